"""The OpenAPI 3 description of the HTTP API, as data.

``tests/server/test_openapi.py`` validates live responses against it and
fuzzes the server from it, so it stays true.  Every path is also served under
``/api``; the spec lists both.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


_STR_LIST = {"type": "array", "items": {"type": "string"}}


def _query(name: str, description: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": {"type": "string"}}


_USER_FILE = {"name": "file", "in": "path", "required": True, "schema": {"type": "string"},
              "description": "Path under the user's files, folders URL-encoded: workflows%2Fa.json"}
_COMMON_ERRORS = {"400": _error("Malformed request (bad JSON, wrong field types)"),
                  "413": _error("Body too large")}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["type", "message"],
                "properties": {"type": {"type": "string"}, "message": {"type": "string"},
                               "details": {"type": "string"}, "extra_info": {"type": "object"}},
            },
            "node_errors": {"type": "object"},
        },
    },
    "PromptError": {
        "type": "object",
        "description": "ComfyUI's validation failure: the first error and errors per node.",
        "required": ["error", "node_errors"],
        "properties": {"error": {"type": ["object", "null"]}, "node_errors": {"type": "object"}},
    },
    "NodeCall": {
        "type": "object",
        "required": ["class_type", "inputs"],
        "properties": {"class_type": {"type": "string"}, "inputs": {"type": "object"},
                       "_meta": {"type": "object"}},
    },
    "Prompt": {"type": "object", "description": "API-format prompt: node id → node call.",
               "additionalProperties": _ref("NodeCall")},
    "PromptRequest": {
        "type": "object",
        "properties": {
            "prompt": _ref("Prompt"),
            "workflow": {"type": "object", "description": "A UI-format workflow, converted on the server "
                                                          "(used when 'prompt' is absent)."},
            "client_id": {"type": "string", "description": "The websocket clientId to send events to."},
            "extra_data": {"type": "object"},
            "front": {"type": "boolean", "description": "Queue at the front."},
            "number": {"type": "number", "description": "Explicit queue position number."},
            "prompt_id": {"type": "string", "description": "Choose the id (default: a new UUID)."},
            "partial_execution_targets": _STR_LIST,
        },
    },
    "PromptQueued": {
        "type": "object",
        "required": ["prompt_id", "number", "node_errors"],
        "properties": {"prompt_id": {"type": "string"}, "number": {"type": "number"},
                       "node_errors": {"type": "object"}},
    },
    "QueueInfo": {
        "type": "object",
        "required": ["exec_info"],
        "properties": {"exec_info": {"type": "object", "required": ["queue_remaining"],
                                     "properties": {"queue_remaining": {"type": "integer"}}}},
    },
    "QueueItem": {
        "type": "array",
        "description": "[number, prompt_id, prompt, extra_data, outputs_to_execute]",
        "prefixItems": [{"type": "number"}, {"type": "string"}, {"type": "object"},
                        {"type": "object"}, _STR_LIST],
        "minItems": 5, "maxItems": 5,
    },
    "Queue": {
        "type": "object",
        "required": ["queue_running", "queue_pending"],
        "properties": {"queue_running": {"type": "array", "items": _ref("QueueItem")},
                       "queue_pending": {"type": "array", "items": _ref("QueueItem")}},
    },
    "QueueOperation": {
        "type": "object",
        "description": "Any combination of: clear the pending queue, delete pending prompts, "
                       "pause or resume the worker, move a pending prompt to a position "
                       "(0 = next; negative counts from the end).",
        "properties": {
            "clear": {"type": "boolean"},
            "delete": _STR_LIST,
            "pause": {"type": "boolean"},
            "resume": {"type": "boolean"},
            "move": {"type": "object", "required": ["prompt_id", "position"],
                     "properties": {"prompt_id": {"type": "string"}, "position": {"type": "integer"}}},
        },
    },
    "QueueOperationResult": {
        "type": "object",
        "required": ["paused"],
        "properties": {
            "paused": {"type": "boolean"},
            "deleted": _STR_LIST,
            "moved": {"type": "object", "properties": {"prompt_id": {"type": "string"},
                                                       "number": {"type": "number"}}},
        },
    },
    "HistoryEntry": {
        "type": "object",
        "required": ["prompt", "outputs", "status"],
        "properties": {
            "prompt": _ref("QueueItem"),
            "outputs": {"type": "object"},
            "status": {"type": "object", "required": ["status_str", "completed", "messages"],
                       "properties": {"status_str": {"type": "string", "enum": ["success", "error"]},
                                      "completed": {"type": "boolean"},
                                      "messages": {"type": "array"}}},
            "meta": {"type": "object"},
        },
    },
    "History": {"type": "object", "additionalProperties": _ref("HistoryEntry")},
    "UserdataEntry": {
        "type": "object", "required": ["name", "path", "type"],
        "properties": {"name": {"type": "string"}, "path": {"type": "string"},
                       "type": {"enum": ["file", "directory"]}, "size": {"type": "integer"},
                       "modified": {"type": "number"}},
    },
    "HistoryOperation": {"type": "object", "properties": {"clear": {"type": "boolean"}, "delete": _STR_LIST}},
    "Interrupt": {"type": "object", "properties": {"prompt_id": {"type": "string"}}},
    "Free": {"type": "object", "properties": {"unload_models": {"type": "boolean"},
                                              "free_memory": {"type": "boolean"}}},
    "UploadForm": {
        "type": "object",
        "required": ["image"],
        "properties": {
            "image": {"type": "string", "format": "binary"},
            "subfolder": {"type": "string"},
            "type": {"type": "string", "enum": ["input", "temp", "output"]},
            "overwrite": {"type": "string", "enum": ["true", "false", "1", "0"]},
            "original_ref": {"type": "string", "description": "mask uploads: JSON {filename, subfolder, type}"},
        },
    },
    "Uploaded": {
        "type": "object",
        "required": ["name", "subfolder", "type"],
        "properties": {"name": {"type": "string"}, "subfolder": {"type": "string"}, "type": {"type": "string"}},
    },
    "NodeInfo": {
        "type": "object",
        "required": ["input", "input_order", "output", "output_is_list", "output_name", "name",
                     "display_name", "description", "python_module", "category", "output_node"],
        "properties": {
            "input": {"type": "object"}, "input_order": {"type": "object"},
            "output": {"type": "array"}, "output_is_list": {"type": "array", "items": {"type": "boolean"}},
            "output_name": {"type": "array"}, "name": {"type": "string"},
            "display_name": {"type": "string"}, "description": {"type": "string"},
            "python_module": {"type": "string"}, "category": {"type": "string"},
            "output_node": {"type": "boolean"}, "output_tooltips": {"type": "array"},
            "deprecated": {"type": "boolean"}, "experimental": {"type": "boolean"},
        },
    },
    "ObjectInfo": {"type": "object", "additionalProperties": _ref("NodeInfo")},
    "SystemStats": {
        "type": "object",
        "required": ["system", "devices"],
        "properties": {
            "system": {"type": "object", "required": ["os", "ram_total", "ram_free", "python_version"],
                       "properties": {"os": {"type": "string"}, "ram_total": {"type": "integer"},
                                      "ram_free": {"type": "integer"}, "python_version": {"type": "string"},
                                      "pytorch_version": {"type": "string"},
                                      "comfyui_version": {"type": "string"}, "argv": _STR_LIST}},
            "devices": {"type": "array", "items": {
                "type": "object", "required": ["name", "type"],
                "properties": {"name": {"type": "string"}, "type": {"type": "string"},
                               "index": {"type": ["integer", "null"]},
                               "vram_total": {"type": "integer"}, "vram_free": {"type": "integer"}}}},
            "workers": {"type": "array", "description": "What runs prompts: the local worker, or each Ray worker",
                        "items": {"type": "object", "required": ["worker"],
                                  "properties": {"worker": {"type": "string"}, "host": {"type": "string"},
                                                 "device": {"type": "string"},
                                                 "resident_models": _STR_LIST,
                                                 "current_prompt": {"type": ["string", "null"]}}}},
        },
    },
    "ModelDownloadRequest": {
        "type": "object",
        "required": ["url", "directory", "name"],
        "properties": {
            "url": {"type": "string", "description": "http:// or https:// URL of the file"},
            "directory": {"type": "string", "description": "Model folder kind: checkpoints, loras, vae..."},
            "name": {"type": "string", "description": "File name inside the folder (sub/name.safetensors allowed)"},
            "sha256": {"type": "string", "description": "Expected sha256 (64 hex digits); checked before the rename"},
            "hash": {"type": "string", "description": "ComfyUI's spelling of the hash (with hash_type)"},
            "hash_type": {"type": "string"},
            "size": {"type": "integer", "minimum": 0, "description": "Expected size in bytes"},
        },
    },
    "ModelDownload": {
        "type": "object",
        "required": ["id", "url", "directory", "name", "state", "done"],
        "properties": {
            "id": {"type": "string"}, "url": {"type": "string"}, "directory": {"type": "string"},
            "name": {"type": "string"}, "state": {"enum": ["downloading", "done", "error", "cancelled"]},
            "done": {"type": "integer"}, "total": {"type": ["integer", "null"]},
            "error": {"type": ["string", "null"]}, "sha256": {"type": ["string", "null"]},
        },
    },
    "Features": {
        "type": "object",
        "required": ["supports_preview_metadata", "max_upload_size"],
        "properties": {"supports_preview_metadata": {"type": "boolean"},
                       "max_upload_size": {"type": "integer"}, "loom": {"type": "object"}},
    },
}

_IMAGE = {"description": "The file", "content": {"image/*": {"schema": {"type": "string", "format": "binary"}},
                                                  "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
_VIEW_PARAMS = [
    {"name": "filename", "in": "query", "required": True, "schema": {"type": "string"}},
    {"name": "subfolder", "in": "query", "schema": {"type": "string"}},
    {"name": "type", "in": "query", "schema": {"type": "string", "enum": ["output", "input", "temp"]}},
    {"name": "preview", "in": "query", "schema": {"type": "string"}, "description": "'webp;90' or 'jpeg;80'"},
    {"name": "channel", "in": "query", "schema": {"type": "string", "enum": ["rgba", "rgb", "a"]}},
]


def _upload(summary: str) -> dict[str, Any]:
    return {"post": {
        "summary": summary,
        "requestBody": {"required": True,
                        "content": {"multipart/form-data": {"schema": _ref("UploadForm")}}},
        "responses": {"200": _json(_ref("Uploaded")), "400": _error("Bad form or path"),
                      "403": _error("Path leaves its folder"), "404": _error("Original image missing"),
                      "413": _error("Over the upload size limit, or an image over --max-image-pixels"),
                      "415": _error("Not an image / not multipart"),
                      "507": _error("Disk full: nothing was saved")},
    }}


PATHS: dict[str, Any] = {
    "/prompt": {
        "get": {"summary": "Queue size", "responses": {"200": _json(_ref("QueueInfo"))}},
        "post": {
            "summary": "Queue a prompt (answers after it is committed to disk)",
            "requestBody": _body(_ref("PromptRequest")),
            "responses": {"200": _json(_ref("PromptQueued")),
                          "400": _json({"anyOf": [_ref("PromptError"), _ref("Error")]}, "Invalid prompt"),
                          "409": _error("prompt_id already queued"), "413": _error("Body too large")},
        },
    },
    "/queue": {
        "get": {"summary": "Running and pending prompts", "responses": {"200": _json(_ref("Queue"))}},
        "post": {"summary": "Clear, delete, pause, resume, move",
                 "requestBody": _body(_ref("QueueOperation")),
                 "responses": {"200": _json(_ref("QueueOperationResult")),
                               "404": _error("Prompt to move is not pending"), **_COMMON_ERRORS}},
    },
    "/history": {
        "get": {"summary": "Finished prompts, oldest first",
                "parameters": [{"name": "max_items", "in": "query", "schema": {"type": "integer", "minimum": 0}},
                               {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}}],
                "responses": {"200": _json(_ref("History")), "400": _error("Bad query")}},
        "post": {"summary": "Clear or delete history", "requestBody": _body(_ref("HistoryOperation")),
                 "responses": {"200": _json({"type": "object"}), **_COMMON_ERRORS}},
    },
    "/history/{prompt_id}": {
        "get": {"summary": "One finished prompt ({} if unknown)",
                "parameters": [{"name": "prompt_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": _json(_ref("History"))}},
    },
    "/interrupt": {
        "post": {"summary": "Interrupt the running prompt (only it, if prompt_id is given)",
                 "requestBody": _body(_ref("Interrupt"), required=False),
                 "responses": {"200": _json({"type": "object", "properties": {"interrupted": {"type": "boolean"}}}),
                               **_COMMON_ERRORS}},
    },
    "/free": {
        "post": {"summary": "Unload models / free memory after the running prompt",
                 "requestBody": _body(_ref("Free")),
                 "responses": {"200": _json({"type": "object"}), **_COMMON_ERRORS}},
    },
    "/view": {
        "get": {"summary": "A file from output/, input/ or temp/", "parameters": _VIEW_PARAMS,
                "responses": {"200": _IMAGE, "400": _error("Bad parameters"),
                              "403": _error("Path leaves its folder"), "404": _error("No such file"),
                              "413": _error("An image over --max-image-pixels, refused before decoding"),
                              "415": _error("Not convertible")}},
    },
    "/upload/image": _upload("Upload an image to input/ (or temp/, output/)"),
    "/upload/mask": _upload("Upload a mask: the original image with the mask's alpha"),
    "/object_info": {"get": {"summary": "Every node's schema", "responses": {"200": _json(_ref("ObjectInfo"))}}},
    "/object_info/{node_class}": {
        "get": {"summary": "One node's schema ({} if unknown)",
                "parameters": [{"name": "node_class", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": _json(_ref("ObjectInfo"))}},
    },
    "/embeddings": {"get": {"summary": "Embedding names", "responses": {"200": _json(_STR_LIST)}}},
    "/models": {"get": {"summary": "Model folder kinds", "responses": {"200": _json(_STR_LIST)}}},
    "/models/{folder}": {
        "get": {"summary": "Model files of one kind",
                "parameters": [{"name": "folder", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": _json(_STR_LIST), "404": _error("Unknown model folder")}},
    },
    "/models/download": {
        "post": {"summary": "Download a model file into its folder (progress: websocket download_progress, "
                            "download_done, download_error, download_cancelled events)",
                 "requestBody": _body(_ref("ModelDownloadRequest")),
                 "responses": {"202": _json(_ref("ModelDownload"), "Started"),
                               "400": _error("Bad URL, folder, name or hash; a loopback or private address"
                                             " without --allow-private-downloads"),
                               "409": _error("That file is being downloaded already"),
                               "413": _error("Body too large")}},
    },
    "/models/downloads": {
        "get": {"summary": "Downloads started since the server started (the last 50 finished ones, and running ones)",
                "responses": {"200": _json({"type": "array", "items": _ref("ModelDownload")})}},
    },
    "/models/downloads/{download_id}/cancel": {
        "post": {"summary": "Cancel a running download: the transfer stops and its partial file is removed "
                            "(a complete file is never touched); answers once it stopped, with state 'cancelled'. "
                            "Clients also get a websocket download_cancelled event.",
                 "parameters": [{"name": "download_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                 "responses": {"200": _json(_ref("ModelDownload"), "Cancelled"),
                               "404": _error("No download has that id"),
                               "409": _error("The download has already ended (done, failed or cancelled)")}},
    },
    "/system_stats": {"get": {"summary": "Machine and device", "responses": {"200": _json(_ref("SystemStats"))}}},
    "/features": {"get": {"summary": "Server feature flags", "responses": {"200": _json(_ref("Features"))}}},
    "/extensions": {"get": {"summary": "Editor extension scripts", "responses": {"200": _json(_STR_LIST)}}},
    "/workflows": {"get": {"summary": "Workflows the editor can open: shipped ones and the user's (names under user/)",
                           "responses": {"200": _json({"type": "array", "items": {
                               "type": "object", "required": ["name", "source"],
                               "properties": {"name": {"type": "string"},
                                              "source": {"enum": ["shipped", "user"]},
                                              "title": {"type": "string"},
                                              "description": {"type": "string"}}}})}}},
    "/workflows/{name}": {
        "get": {"summary": "One workflow file (UI format JSON, as stored)",
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": _json({"type": "object"}), "404": _error("No such workflow"),
                              "413": _error("Workflow file too large")}},
    },
    "/userdata": {
        "get": {"summary": "Files of one folder of the user's files (ComfyUI's userdata API)",
                "parameters": [_query("dir", "The folder, e.g. workflows", required=True),
                               _query("recurse", "true: include subfolders"),
                               _query("full_info", "true: objects with path, size, modified, created (ms)"),
                               _query("split", "true: [path, *parts] per file")],
                "responses": {"200": _json({"type": "array"}), "400": _error("No dir given"),
                              "403": _error("Not a user folder"), "404": _error("No such folder")}},
    },
    "/v2/userdata": {
        "get": {"summary": "Folders then files under a path of the user's files, with sizes",
                "parameters": [_query("path", "A folder relative to the user's files (default: all)")],
                "responses": {"200": _json({"type": "array", "items": _ref("UserdataEntry")}),
                              "400": _error("Not a folder"), "403": _error("Not a user folder"),
                              "404": _error("No such folder")}},
    },
    "/userdata/{file}": {
        "parameters": [_USER_FILE],
        "get": {"summary": "One user file, as stored",
                "responses": {"200": {"description": "The file's bytes"}, "400": _error("Bad name"),
                              "403": _error("Not a user file"),
                              "404": _error("No such file")}},
        "post": {"summary": "Write a user file (the body is its content); atomic",
                 "parameters": [_query("overwrite", "false: 409 if the file exists (default true)"),
                                _query("full_info", "true: answer the file's info instead of its path")],
                 "requestBody": {"required": False, "content": {"application/octet-stream": {"schema": {}}}},
                 "responses": {"200": _json({}), "400": _error("Bad name"), "403": _error("Not a user file"),
                               "409": _error("Exists and overwrite=false"), "413": _error("Too large"),
                               "507": _error("Disk full")}},
        "delete": {"summary": "Remove a user file",
                   "responses": {"204": {"description": "Removed"}, "400": _error("Bad name"),
                                 "403": _error("Not a user file"),
                                 "404": _error("No such file")}},
    },
    "/userdata/{file}/move/{dest}": {
        "post": {"summary": "Rename a user file",
                 "parameters": [_USER_FILE, {"name": "dest", "in": "path", "required": True,
                                             "schema": {"type": "string"}},
                                _query("overwrite", "false: 409 if dest exists (default true)"),
                                _query("full_info", "true: answer the file's info instead of its path")],
                 "responses": {"200": _json({}), "400": _error("Bad name"), "403": _error("Not a user file"),
                               "404": _error("No such file"), "409": _error("dest exists and overwrite=false")}},
    },
    "/openapi.json": {"get": {"summary": "This document", "responses": {"200": _json({"type": "object"})}}},
    "/ws": {
        "get": {"summary": "Websocket of events: connect with ?clientId=; see the README for messages",
                "parameters": [{"name": "clientId", "in": "query", "schema": {"type": "string", "maxLength": 200}}],
                "responses": {"101": {"description": "Switching to the websocket protocol"},
                              "400": _error("Not a websocket upgrade / bad clientId")}},
    },
}


@lru_cache(maxsize=1)
def _spec() -> dict[str, Any]:
    from .openapi_jobs import JOB_PATHS, JOB_SCHEMAS

    SCHEMAS.update(JOB_SCHEMAS)
    paths: dict[str, Any] = {}
    for path, item in {**PATHS, **JOB_PATHS}.items():
        paths[path] = item
        paths["/api" + path] = copy.deepcopy(item)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Loom", "version": "0.1.0",
                 "description": "ComfyUI-compatible API of the Loom server. Every route is also served "
                                "under /api. With --auth-token, send 'Authorization: Bearer <token>'."},
        "components": {"schemas": SCHEMAS,
                       "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    }


def openapi_spec() -> dict[str, Any]:
    return copy.deepcopy(_spec())
