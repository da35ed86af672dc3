"""The GRPO reward: `accuracy_weight * accuracy + format_weight * format` (paper: 0.9 / 0.1).

format    the response is `<think>...</think>` followed by an answer holding `\\boxed{...}`.
accuracy  the last `\\boxed{}` *after* the reasoning, graded against the gold answer by the shared
          matcher (`capcurriculum.answers`), then by math-verify for LaTeX-shaped answers. Guards:
          an answer longer than `max_answer_chars`, or two boxed answers that disagree, scores 0.

Grading never hangs the trainer: math-verify runs with its signal timeouts on the main thread and
is skipped elsewhere (its signals only work there). A gold answer that cannot be graded is never
rewarded (`answers.gold_is_gradeable`, which the data loader also uses to skip and count such items).
"""

from __future__ import annotations

from dataclasses import dataclass

from capcurriculum.answers import BOXED, MAX_ANSWER_CHARS, committed_answer, gold_is_gradeable, matches


@dataclass(frozen=True)
class RewardConfig:
    accuracy_weight: float = 0.9
    format_weight: float = 0.1
    max_answer_chars: int = 64       # the "too complex" guard: a boxed essay is no answer
    math_verify: bool = True         # fall back to math-verify for LaTeX/number answers
    timeout_s: int = 2               # math-verify's own time limit per parse/verify call

    def __post_init__(self) -> None:
        if self.accuracy_weight < 0 or self.format_weight < 0 or self.accuracy_weight + self.format_weight <= 0:
            raise ValueError(f"reward: weights must be >= 0 with a positive sum, got accuracy_weight="
                             f"{self.accuracy_weight}, format_weight={self.format_weight}")
        if self.max_answer_chars < 1 or self.timeout_s < 1:
            raise ValueError("reward.max_answer_chars and reward.timeout_s must be >= 1")
        if self.max_answer_chars > MAX_ANSWER_CHARS:
            raise ValueError(f"reward.max_answer_chars={self.max_answer_chars}: at most {MAX_ANSWER_CHARS}, the "
                             "longest boxed answer extraction reads (capcurriculum.answers.MAX_ANSWER_CHARS)")


def format_reward(response: str) -> float:
    """1 iff one `<think>...</think>` block opens the response and a `\\boxed{` with a `}` after it
    follows the block. Plain string searches: linear in the response, however it degenerates."""
    head = response.lstrip()
    if not head.startswith("<think>") or response.count("<think>") != 1 or response.count("</think>") != 1:
        return 0.0
    tail = head.split("</think>", 1)[1]
    box = tail.find(BOXED)
    return 1.0 if box != -1 and tail.find("}", box + len(BOXED)) != -1 else 0.0


def grade(pred: str | None, gold: str, answer_type: str, cfg: RewardConfig = RewardConfig()) -> bool:
    """The shared matcher (`answers.matches`) behind the reward's own guard: a boxed answer longer than
    `cfg.max_answer_chars` is no answer."""
    if pred is None or len(pred) > cfg.max_answer_chars:
        return False
    return matches(pred, gold, answer_type, math_verify=cfg.math_verify, timeout_s=cfg.timeout_s)


def reward(response: str, gold: str, answer_type: str, cfg: RewardConfig = RewardConfig()) -> dict[str, float]:
    """{'reward', 'accuracy', 'format', 'ungradeable_gold'} for one response; a gold no answer could match
    (`answers.gold_is_gradeable`) gives accuracy 0 whatever the response, and 1.0 in 'ungradeable_gold'."""
    fmt = format_reward(response)
    if not gold_is_gradeable(gold, answer_type):
        return {"reward": cfg.format_weight * fmt, "accuracy": 0.0, "format": fmt, "ungradeable_gold": 1.0}
    acc = float(grade(committed_answer(response), gold, answer_type, cfg))
    return {"reward": cfg.accuracy_weight * acc + cfg.format_weight * fmt, "accuracy": acc, "format": fmt,
            "ungradeable_gold": 0.0}
