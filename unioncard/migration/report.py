"""The Russian reports of ``unioncard migrate check`` and ``load``: Markdown, readable as text."""

from __future__ import annotations

from unioncard.i18n import N_, translate
from unioncard.migration import domain as md
from unioncard.migration.staging import UNION_WIDE, Staged

# At most this many problems are listed one by one (all are counted, and all are in the CSV).
LISTED = 1000

STATUS_TEXT = {"loaded": N_("loaded"), "unchanged": N_("already loaded, unchanged"),
               "refused": N_("not loaded: has problems"),
               "changed": N_("not loaded: loaded earlier from other data, never merged")}


def _t(message: str, **params) -> str:
    return translate(message, **params)


def check_report(staged: Staged, source: str) -> str:
    lines = [f"# {_t(N_('Check of the exchange folder %(source)s'), source=source)}", ""]
    if staged.fatal is not None:
        row = f" ({_t(N_('line %(row)s'), row=staged.fatal.row)})" if staged.fatal.row else ""
        lines += [f"**{_t(N_('The folder cannot be read'))}**{row}: {staged.fatal.render()} "
                  f"(`{staged.fatal.code}`)", ""]
        return "\n".join(lines) + "\n"
    lines += [f"## {_t(N_('Files'))}", "", f"| {_t(N_('File'))} | {_t(N_('Rows'))} |", "|---|---:|"]
    for kind in md.ORDER:
        lines.append(f"| {md.FILES[kind].name} | {staged.rows_read.get(kind, 0)} |")
    total = staged.problem_count()
    lines += ["", f"## {_t(N_('Problems'))}: {total}", ""]
    if total:
        lines += [f"| {_t(N_('Code'))} | {_t(N_('Rows'))} |", "|---|---:|"]
        lines += [f"| `{code}` | {count} |" for code, count in staged.problem_codes().items()]
        lines += ["", f"| {_t(N_('File'))} | {_t(N_('Row'))} | {_t(N_('Column'))} | {_t(N_('Region'))} | "
                      f"{_t(N_('What is wrong'))} |", "|---|---:|---|---|---|"]
        for file, row, column, code, message, region in staged.problems(LISTED):
            lines.append(f"| {file} | {row} | {column or '—'} | {region or _t(N_('whole union'))} | "
                         f"{message.replace('|', '/')} (`{code}`) |")
        if total > LISTED:
            lines += ["", _t(N_("The first %(listed)s of %(total)s problems are listed; all are in the CSV file."),
                             listed=LISTED, total=total)]
    else:
        lines.append(_t(N_("None: the folder can be loaded.")))
    lines += ["", f"## {_t(N_('By region'))}", "",
              f"| {_t(N_('Region'))} | {_t(N_('Organisations'))} | {_t(N_('Members'))} | "
              f"{_t(N_('Consents 1 / 2 / 3'))} | {_t(N_('Cards'))} | {_t(N_('Of them «Выдан»'))} | "
              f"{_t(N_('Problems'))} |", "|---|---:|---:|---|---:|---:|---:|"]
    counts, problems = staged.counts(), staged.problems_by_region()
    for region in staged.regions:
        c = counts.get(region.data.code)
        if c is None:
            continue
        consents = " / ".join(str(c.consents.get(s, 0)) for s in ("processing", "partner_transfer", "messaging"))
        lines.append(f"| {region.data.code} {region.data.name} | {c.organisations} | {c.members} | {consents} | "
                     f"{sum(c.cards.values())} | {c.cards.get('issued', 0)} | {problems.get(region.data.code, 0)} |")
    if problems.get(UNION_WIDE):
        lines += ["", _t(N_("%(count)s problems concern the whole union (the central organisation, rows that "
                            "belong to no region): while they remain, nothing is loaded."),
                         count=problems[UNION_WIDE])]
    return "\n".join(lines) + "\n"


def load_report(staged: Staged, source: str, result, reconciliations) -> str:
    lines = [check_report(staged, source).rstrip("\n"), "", f"## {_t(N_('Load'))}", ""]
    if result is None or not result.regions:
        lines.append(_t(N_("Nothing was loaded: the folder has problems that concern the whole union.")))
        return "\n".join(lines) + "\n"
    lines += [f"| {_t(N_('Region'))} | {_t(N_('Result'))} | {_t(N_('Seconds'))} |", "|---|---|---:|"]
    lines += [f"| {r.code} {r.name} | {_t(STATUS_TEXT[r.status])} | {r.seconds:.1f} |" for r in result.regions]
    lines += ["", f"## {_t(N_('Reconciliation'))}", ""]
    for item in reconciliations:
        if not item.differences:
            lines.append(f"- {item.region_org_code} {item.name}: {_t(N_('no differences'))}")
        for what, source_count, loaded in item.differences:
            lines.append(f"- {item.region_org_code} {item.name}: {what} — "
                         f"{_t(N_('in the files %(source)s, in the registry %(loaded)s'), source=source_count, loaded=loaded)}")
    return "\n".join(lines) + "\n"


def write_problems_csv(staged: Staged, path) -> None:
    import csv

    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "row", "column", "code", "message", "region"])
        for record in staged.problems():
            writer.writerow(record)
