"""The credentials committee's quorum rule: how many of the elected delegates must be present.
Plain Python (no database): the event keeps the rule as text, the report and the event page ask
this module what it means.

    «2/3»          at least two thirds of the elected delegates (rounded up)
    «>1/2»         more than half («больше 1/2», «более 1/2» too)
    «50 %»         at least that share («66,7 %»)
    «120»          at least that many delegates
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

from unioncard.errors import ValidationError
from unioncard.i18n import N_

MAX_RULE = 40
_MORE = r"(?P<more>>|больше|более)?\s*"
_FRACTION = re.compile(rf"^{_MORE}(?P<num>\d{{1,3}})\s*/\s*(?P<den>\d{{1,3}})$")
_PERCENT = re.compile(rf"^{_MORE}(?P<pct>\d{{1,3}}(?:[.,]\d{{1,2}})?)\s*%$")
_COUNT = re.compile(r"^(?P<count>\d{1,6})$")


class QuorumRuleInvalid(ValidationError):
    code = "quorum_rule_invalid"
    message = N_("The quorum rule «%(rule)s» is not understood: write for example «2/3», «>1/2», «50 %%» or a "
                 "number of delegates")


@dataclass(frozen=True)
class QuorumRule:
    text: str
    share: Fraction | None = None   # of the elected delegates
    more_than: bool = False         # strictly more than the share
    count: int | None = None        # or a fixed number

    def needed(self, elected: int) -> int:
        """How many present delegates make the quorum."""
        if self.count is not None:
            return self.count
        exact = self.share * elected
        if self.more_than:
            return math.floor(exact) + 1
        return math.ceil(exact)

    def reached(self, present: int, elected: int) -> bool:
        return elected > 0 and present >= self.needed(elected)


def parse(text: str | None) -> QuorumRule | None:
    """The rule, None for no rule (empty text); QuorumRuleInvalid names a rule that does not parse."""
    raw = " ".join(str(text or "").split())
    if not raw:
        return None
    value = raw.casefold().replace("≥", "").strip()
    if len(raw) > MAX_RULE:
        raise QuorumRuleInvalid(rule=raw[:MAX_RULE] + "…")
    if match := _FRACTION.match(value):
        numerator, denominator = int(match["num"]), int(match["den"])
        if denominator == 0 or not 0 < numerator <= denominator or (match["more"] and numerator == denominator):
            raise QuorumRuleInvalid(rule=raw)  # «more than all of them» can never be reached
        return QuorumRule(raw, Fraction(numerator, denominator), bool(match["more"]))
    if match := _PERCENT.match(value):
        share = Fraction(match["pct"].replace(",", ".")) / 100
        if not 0 < share <= 1 or (match["more"] and share == 1):
            raise QuorumRuleInvalid(rule=raw)
        return QuorumRule(raw, share, bool(match["more"]))
    if match := _COUNT.match(value):
        count = int(match["count"])
        if count < 1:
            raise QuorumRuleInvalid(rule=raw)
        return QuorumRule(raw, count=count)
    raise QuorumRuleInvalid(rule=raw)
