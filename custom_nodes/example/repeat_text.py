"""A node in ComfyUI's V1 style: a class describing itself with class attributes."""


class ExampleRepeatText:
    """Repeats a text a number of times, with a separator between the copies."""

    # Shown in the editor's node library and tooltips.
    DESCRIPTION = "Repeats a text a number of times, with a separator between the copies."
    CATEGORY = "example"

    @classmethod
    def INPUT_TYPES(cls):
        # Each input: (type, options).  Widgets (INT, STRING...) get a default and limits.
        return {
            "required": {
                "text": ("STRING", {"multiline": True, "default": "hello"}),
                "times": ("INT", {"default": 2, "min": 1, "max": 100, "tooltip": "How many copies"}),
            },
            "optional": {
                "separator": ("STRING", {"default": " "}),
            },
        }

    RETURN_TYPES = ("STRING", "INT")
    RETURN_NAMES = ("text", "length")
    # The method called with the inputs as keyword arguments.
    FUNCTION = "repeat"

    def repeat(self, text, times, separator=" "):
        repeated = separator.join([text] * times)
        # A tuple with one value per RETURN_TYPES entry.
        return (repeated, len(repeated))

    #: Longest text the node will build.
    MAX_LENGTH = 100_000

    @classmethod
    def VALIDATE_INPUTS(cls, text, times):
        # Runs before the prompt is queued; a returned string is shown as the error.
        # Declaring inputs here turns off the built-in checks (min/max) for them,
        # and a linked input arrives as None: its value is not known yet.
        if times is not None and not 1 <= times <= 100:
            return f"times must be between 1 and 100, got {times}"
        if text is not None and times is not None and len(text) * times > cls.MAX_LENGTH:
            return f"the text would be {len(text) * times} characters long; the limit is {cls.MAX_LENGTH}"
        return True
