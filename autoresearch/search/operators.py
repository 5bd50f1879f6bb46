"""The fixed catalogue of mutation operators: each is a directive the proposer applies to a parent text."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MutationOperator:
    name: str
    directive: str  # what the proposer is told to do to the parent instructions
    needs_second_parent: bool = False
    # Mechanical operators are applied in code first (search/mechanical.py: a rule for the worst check, the
    # answer's shape for the shared checks, a deleted sentence, a crossover); the proposer model writes the
    # variant only when the mechanical edit does not apply. A small model rewrites a whole text unreliably,
    # but these edits are exact and grounded.
    mechanical: bool = False


CATALOGUE: tuple[MutationOperator, ...] = (
    MutationOperator("rephrase", "Rephrase the instructions so they are clearer and more direct. Keep every requirement."),
    MutationOperator("add_constraint", "Add one concrete rule that would fix the weakest point in the feedback."),
    MutationOperator("delete_sentence", "Delete the one sentence that helps least. Change nothing else.",
                     mechanical=True),
    MutationOperator("restructure", "Reorder the instructions as a short numbered list of rules, most important first."),
    MutationOperator("add_boundary", "Add one sentence saying what the answer must NOT do or include."),
    MutationOperator("add_example", "Add one very short example of the expected output format.", mechanical=True),
    MutationOperator("compress", "Make the instructions shorter: keep only the rules that matter."),
    MutationOperator("target_failing_criterion",
                     "Add a rule that makes answers pass the most often failed check listed in the feedback.",
                     mechanical=True),
    MutationOperator("crossover", "Combine the best rules of the two versions into one set of instructions.",
                     needs_second_parent=True, mechanical=True),
)
BY_NAME = {op.name: op for op in CATALOGUE}


def select(names: list[str] | None) -> tuple[MutationOperator, ...]:
    """The operators a study may use (all of them by default); unknown names raise ValueError."""
    if names is None:
        return CATALOGUE
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise ValueError(f"unknown operator(s) {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    return tuple(BY_NAME[n] for n in names)
