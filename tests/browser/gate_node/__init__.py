"""Test-only node for the browser tier: holds ComfyUI's one execution worker until a file exists.

While it runs, prompts POSTed to /prompt are still fully validated (that happens in the request)
and queued, but none can start. The tests validate the Flux workflows this way, with empty
placeholder model files, then delete them from the queue: nothing ever loads a placeholder.
"""

import os
import time

import comfy.model_management


class CABrowserTestGate:
    CATEGORY = "testing"
    FUNCTION = "hold"
    RETURN_TYPES = ()
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "release_file": ("STRING", {"default": ""}),
            "started_file": ("STRING", {"default": ""}),
            "timeout": ("FLOAT", {"default": 120.0, "min": 1.0, "max": 600.0}),
        }}

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        return float("nan")  # never cached: every gate really holds the worker

    def hold(self, release_file, started_file, timeout):
        with open(started_file, "w"):
            pass
        deadline = time.monotonic() + timeout
        while not os.path.exists(release_file) and time.monotonic() < deadline:
            comfy.model_management.throw_exception_if_processing_interrupted()
            time.sleep(0.05)
        return {}


NODE_CLASS_MAPPINGS = {"CABrowserTestGate": CABrowserTestGate}
NODE_DISPLAY_NAME_MAPPINGS = {"CABrowserTestGate": "CA browser test gate"}
