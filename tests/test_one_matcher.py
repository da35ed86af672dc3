"""One matcher (DESIGN.md section 7): the perception filter, the GRPO reward and the in-domain evaluation read
and grade an answer with the same functions of `capcurriculum.answers`, so the three can never disagree.
One table of responses goes through each path's real entry point. (The benchmark adapters read a reply by
VLMEvalKit's rules on purpose — an unboxed "Answer: 6" is an answer there — with the same module's helpers.)"""

import pytest

from capcurriculum import answers
from capcurriculum.generation import Result
from capcurriculum.perception.filter import judge_model
from capcurriculum.sampling.batching import Item
from capcurriculum.sampling.capabilities import score
from capcurriculum.sampling.rewards import reward

T = "<think>count the cubes: four and two</think> "
ROWS = [
    # response, gold, answer type, right
    (T + "\\boxed{6}", "6", "number", True),
    (T + "The answer is \\boxed{6}.", "6", "number", True),
    (T + "Answer: \\boxed{six}", "6", "number", True),               # a number word
    (T + "Answer: 6", "6", "number", False),                          # no box: commits to nothing
    (T + "\\boxed{1,000}", "1000", "number", True),                  # thousands separator
    (T + "\\boxed{1000}", "1,000", "number", True),
    (T + "\\boxed{2.50}", "2.5", "number", True),                    # trailing zero
    (T + "\\boxed{6.0}", "6", "number", True),
    (T + "\\boxed{0.5}", "\\frac{1}{2}", "number", True),            # math-verify's equivalence
    (T + "\\boxed{7}", "6", "number", False),
    (T + "\\boxed{6 cubes}", "6", "number", True),                  # a unit: math-verify reads the value
    (T + "\\boxed{(B)}", "B", "choice", True),                       # letters
    (T + "\\boxed{B. red}", "B", "choice", True),
    (T + "\\boxed{b}", "B", "choice", True),
    (T + "\\boxed{C}", "B", "choice", False),
    (T + "\\boxed{Yes}", "yes", "text", True),                       # yes / no
    (T + "\\boxed{no}", "yes", "text", False),
    (T + "\\boxed{The red cube.}", "red cube", "text", True),        # article, end punctuation, case
    (T + "\\boxed{\\text{red}}", "red", "text", True),
    ("", "6", "number", False),                                       # empty
    (T + "\\boxed{}", "6", "number", False),
    (T, "6", "number", False),
    ("<think>so \\boxed{6}</think> I am not sure", "6", "number", False),  # a box in the reasoning only
    (T + "\\boxed{5} or maybe \\boxed{6}", "6", "number", False),    # hedging between two answers
    (T + "\\boxed{6} so \\boxed{6.0}", "6", "number", False),         # two boxes differ as written: hedging
    (T + "\\boxed{\\boxed{6}}", "6", "number", False),               # a box holding a box is no answer
    (T + "\\boxed{see figure}", "see figure", "text", False),         # ungradeable golds
    (T + "\\boxed{n/a}", "N/A", "text", False),
    (T + "\\boxed{x + 1}", "x + 1", "number", False),
]


def through_filter(response: str, gold: str, answer_type: str) -> bool:
    """The filter's verdict on the image path (its caption path is graded alike)."""
    ex = {"id": "q", "question": "How many cubes?", "answer": gold, "answer_type": answer_type,
          "image": "s.jpg", "meta": {"scene_id": "s"}}
    results = [Result("q|image", texts=[response]), Result("q|caption", texts=[response])]
    rec = judge_model([ex], results, "m")[0]
    assert rec["image_correct"] == rec["caption_correct"]
    return bool(rec["image_correct"])


def through_reward(response: str, gold: str, answer_type: str) -> bool:
    return reward(response, gold, answer_type)["accuracy"] == 1.0


def through_evaluation(response: str, gold: str, answer_type: str) -> bool:
    """The in-domain evaluation (`evaluate_tiny`, the headroom's greedy pass) scores with `capabilities.score`."""
    item = Item({"id": "q", "question": "How many cubes?", "answer": gold, "answer_type": answer_type}, "text_math")
    return bool(score([item], [{"response": response, "n_tokens": 1}])[0]["correct"])


PATHS = {"filter": through_filter, "reward": through_reward, "evaluation": through_evaluation}


@pytest.mark.parametrize("response, gold, answer_type, right", ROWS)
def test_filter_reward_and_evaluation_agree(response, gold, answer_type, right):
    verdicts = {name: path(response, gold, answer_type) for name, path in PATHS.items()}
    assert verdicts == dict.fromkeys(PATHS, right)


@pytest.mark.parametrize("response, gold, answer_type, right", ROWS)
def test_the_shared_functions_give_the_same_verdict(response, gold, answer_type, right):
    """What the three paths share, called directly: the answer a response commits to, the gold guard, the matcher."""
    got = answers.gold_is_gradeable(gold, answer_type) and answers.matches(
        answers.committed_answer(response), gold, answer_type)
    assert got is right


def test_the_filter_alone_also_reads_a_bare_short_reply():
    """Untrained filter models answer a short question in a word: the one reading only the filter adds."""
    for reply in ("6", "six", "Answer: 6"):
        assert through_filter(reply, "6", "number") and not through_reward(reply, "6", "number")
        assert not through_evaluation(reply, "6", "number") and answers.committed_answer(reply) is None
    assert answers.extract_answer("so it is 6") is None  # more than a few words, unboxed: no answer
