"""The concept stream's machinery: installing it on a cloned MODEL (install.py), its step through each joint
block (step.py), recording a run's scores (recording.py, recorder.py), the text layers' shared casts
(shared_casts.py) and the concepts' encoding (encoding.py). It knows a family only through the interface of
nodes/families/base.py."""

from .install import CompiledModelError, ConceptAttentionPatch, is_compiled
from .recording import PROMPT_CHOICES, check_prompt_runs, chosen_prompts, step_range
from .step import StopAfterLastLayer

__all__ = ["PROMPT_CHOICES", "CompiledModelError", "ConceptAttentionPatch", "StopAfterLastLayer",
           "check_prompt_runs", "chosen_prompts", "is_compiled", "step_range"]
