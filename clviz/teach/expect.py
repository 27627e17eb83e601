"""A take-away is a claim about numbers on the screen: check it where it is made."""

from __future__ import annotations


class TakeawayError(AssertionError):
    """A notebook's take-away does not hold for the numbers it describes."""


def expect(claim_holds: bool, claim: str, numbers: str = "") -> str:
    """Return ``claim`` when ``claim_holds``; otherwise raise :class:`TakeawayError` naming the
    claim and the ``numbers`` that contradict it.

    A notebook prints ``expect(...)``'s return value as its take-away, so a sentence on the
    screen is always one the numbers above it support, in fast mode and full mode alike::

        print(expect(ft.transfer < zs.transfer - 1,
                     "Fine-tuning loses zero-shot transfer.",
                     f"Transfer: fine-tuning {ft.transfer:.1f}, zero-shot {zs.transfer:.1f}"))
    """
    if not claim_holds:
        detail = f" ({numbers})" if numbers else ""
        raise TakeawayError(
            f"the take-away {claim!r} does not hold for these numbers{detail}; the run "
            "differs from the one the text was written for (a different budget, profile or "
            "seed?): read the numbers above and say what they show instead"
        )
    return claim
