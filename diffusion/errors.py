"""Errors the runtime raises for bad user input; their messages are shown to users."""


class ModelLoadError(ValueError):
    """A model file could not be read or is not a supported model."""


class PromptError(ValueError):
    """A prompt references something that does not exist (e.g. a missing embedding)."""


class SamplingError(ValueError):
    """Sampling inputs that cannot work together (shapes, unknown sampler...)."""
