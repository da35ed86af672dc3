"""What the yes/no benchmarks (POPE, HallusionBench) share: reading a yes or a no.

VLMEvalKit (`vlmeval/dataset/utils/yorn.py` YOrN_Extraction) reads "yes" when the reply's words
contain yes and not no, "no" for the reverse, and otherwise "Unknown" (which its judge may resolve);
here that rule runs on the last \\boxed{} first, then the "Answer:" line, then the final reply.
"""

from __future__ import annotations

from capcurriculum.answers import answer_line, extract_boxed, final_part, yes_no

from .base import Adapter, BenchItem


class YesNoAdapter(Adapter):
    def extract(self, response: str, item: BenchItem) -> str | None:
        if response is None:
            return None
        for cand in (extract_boxed(response), answer_line(response)):
            if cand is not None and yes_no(cand) is not None:
                return yes_no(cand)
        return yes_no(final_part(response))

    def score(self, item: BenchItem, extracted: str | None) -> bool:
        return extracted is not None and extracted == item.gold
