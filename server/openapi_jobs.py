"""The OpenAPI description of the jobs API (``server.routes_jobs``), merged
into ``/openapi.json`` by ``server.openapi``."""

from __future__ import annotations

from typing import Any

from .jobs import STATUSES
from .routes_jobs import MAX_WAIT


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


_JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"},
           "description": "The prompt id POST /prompt answered"}
_NUMBER = {"type": ["number", "null"]}

JOB_SCHEMAS: dict[str, Any] = {
    "Job": {
        "type": "object",
        "description": "A prompt seen as a job, in ComfyUI's jobs API shape (fields without a value are left out).",
        "required": ["id", "status"],
        "properties": {
            "id": {"type": "string"},
            "status": {"enum": list(STATUSES)},
            "priority": _NUMBER,
            "create_time": {**_NUMBER, "description": "When it was queued, ms since the epoch"},
            "execution_start_time": _NUMBER, "execution_end_time": _NUMBER,
            "execution_error": {"type": "object"},
            "completion_status": {"type": "string"},
            "has_errors": {"type": "boolean"}, "execution_error_count": {"type": "integer"},
            "outputs_count": {"type": "integer"}, "previewable_outputs_count": {"type": "integer"},
            "preview_output": {"type": "object"},
            "workflow_id": {},
            "queue_position": {"type": "integer", "description": "Pending jobs: 0 runs next"},
            "outputs": {"type": "object", "description": "GET /api/jobs/{id} only"},
            "execution_status": {"type": "object", "description": "GET /api/jobs/{id} only"},
            "execution_errors": {"type": "array", "description": "GET /api/jobs/{id} only"},
            "workflow": {"type": "object", "description": "GET /api/jobs/{id} only: {prompt, extra_data}"},
        },
    },
    "JobList": {
        "type": "object",
        "required": ["jobs", "pagination"],
        "properties": {
            "jobs": {"type": "array", "items": _ref("Job")},
            "pagination": {"type": "object", "required": ["offset", "limit", "total", "has_more"],
                           "properties": {"offset": {"type": "integer"}, "limit": {"type": ["integer", "null"]},
                                          "total": {"type": "integer"}, "has_more": {"type": "boolean"}}},
        },
    },
    "Cancelled": {"type": "object", "required": ["cancelled"], "properties": {"cancelled": {"type": "boolean"}}},
    "CancelJobs": {"type": "object", "required": ["job_ids"],
                   "properties": {"job_ids": {"type": "array", "items": {"type": "string"}}}},
}

_BAD = {"400": _error("Malformed request (bad JSON, wrong field types)"), "413": _error("Body too large")}

JOB_PATHS: dict[str, Any] = {
    "/jobs": {
        "get": {"summary": "Jobs: queued, running and finished, newest first (ComfyUI's jobs API)",
                "parameters": [
                    _query("status", "Comma-separated: " + ", ".join(STATUSES)),
                    _query("workflow_id", "Only jobs of this workflow (extra_pnginfo.workflow.id)"),
                    _query("sort_by", "created_at (default) or execution_duration"),
                    _query("sort_order", "desc (default) or asc"),
                    _query("limit", "Most jobs to return (default: all)", {"type": "integer", "minimum": 1}),
                    _query("offset", "Jobs to skip", {"type": "integer", "minimum": 0})],
                "responses": {"200": _json(_ref("JobList")), "400": _error("Bad query parameter")}},
    },
    "/jobs/{job_id}": {
        "get": {"summary": "One job with its outputs; ?wait=SECONDS holds the answer until it ends",
                "parameters": [_JOB_ID, _query("wait", f"Seconds to wait for the job to end (at most {MAX_WAIT:g});"
                                                       " then its state, ended or not",
                                               {"type": "number", "minimum": 0})],
                "responses": {"200": _json(_ref("Job")), "400": _error("Bad wait"),
                              "404": _error("No such job (or another user's)")}},
    },
    "/jobs/{job_id}/cancel": {
        "post": {"summary": "Interrupt a running job or drop a pending one; a finished or unknown id: cancelled false",
                 "parameters": [_JOB_ID],
                 "responses": {"200": _json(_ref("Cancelled"))}},
    },
    "/jobs/cancel": {
        "post": {"summary": "Cancel several jobs; cancelled is true if any was",
                 "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("CancelJobs")}}},
                 "responses": {"200": _json(_ref("Cancelled")), **_BAD}},
    },
}
