"""The Russian reports of ``unioncard migrate check`` and ``load``: Markdown, readable as text."""

from __future__ import annotations

from unioncard.i18n import N_, translate
from unioncard.migration import domain as md
from unioncard.migration.reconcile import label as reconciler_label
from unioncard.migration.staging import UNION_WIDE, Staged

# Headings and labels (module constants: message extraction does not look inside f-strings).
T_CHECK_OF_THE_EXCHANGE_FOLDER_SOURCE_S = N_("Check of the exchange folder %(source)s")
T_LINE_ROW_S = N_("line %(row)s")
T_THE_FOLDER_CANNOT_BE_READ = N_("The folder cannot be read")
T_FILES = N_("Files")
T_FILE = N_("File")
T_ROWS = N_("Rows")
T_PROBLEMS = N_("Problems")
T_CODE = N_("Code")
T_ROW = N_("Row")
T_COLUMN = N_("Column")
T_REGION = N_("Region")
T_WHAT_IS_WRONG = N_("What is wrong")
T_WHOLE_UNION = N_("whole union")
T_BY_REGION = N_("By region")
T_ORGANISATIONS = N_("Organisations")
T_MEMBERS = N_("Members")
T_CONSENTS_1_2_3 = N_("Consents 1 / 2 / 3")
T_CARDS = N_("Cards")
T_OF_THEM = N_("Of them «Выдан»")
T_LOAD = N_("Load")
T_RESULT = N_("Result")
T_SECONDS = N_("Seconds")
T_RECONCILIATION = N_("Reconciliation")
T_NO_DIFFERENCES = N_("no differences")
T_IN_THE_FILES_SOURCE_S_IN_THE_REGISTRY_LO = N_("in the files %(source)s, in the registry %(loaded)s")

# At most this many problems are listed one by one (all are counted, and all are in the CSV).
LISTED = 1000

STATUS_TEXT = {"loaded": N_("loaded"), "unchanged": N_("already loaded, unchanged"),
               "refused": N_("not loaded: has problems"),
               "changed": N_("not loaded: already loaded from another export; nothing is merged"),
               "held": N_("not loaded: the whole union's problems hold every region back"),
               "failed": N_("not loaded: the database refused it (the region was rolled back)")}


def _cell(text: str) -> str:
    """Text in a Markdown table cell, shown as it is (a bar escaped, a line break a space)."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _t(message: str, **params) -> str:
    return translate(message, **params)


T_LOAD_OF = N_("Load of the exchange folder %(source)s")


def check_report(staged: Staged, source: str, title: str = T_CHECK_OF_THE_EXCHANGE_FOLDER_SOURCE_S) -> str:
    lines = [f"# {_t(title, source=source)}", ""]
    if staged.fatal is not None:
        row = f" ({_t(T_LINE_ROW_S, row=staged.fatal.row)})" if staged.fatal.row else ""
        lines += [f"**{_t(T_THE_FOLDER_CANNOT_BE_READ)}**{row}: {staged.fatal.render()} "
                  f"(`{staged.fatal.code}`)", ""]
        return "\n".join(lines) + "\n"
    lines += [f"## {_t(T_FILES)}", "", f"| {_t(T_FILE)} | {_t(T_ROWS)} |", "|---|---:|"]
    for kind in md.ORDER:
        lines.append(f"| {md.FILES[kind].name} | {staged.rows_read.get(kind, 0)} |")
    total = staged.problem_count()
    lines += ["", f"## {_t(T_PROBLEMS)}: {total}", ""]
    if total:
        lines += [f"| {_t(T_CODE)} | {_t(T_ROWS)} |", "|---|---:|"]
        lines += [f"| `{code}` | {count} |" for code, count in staged.problem_codes().items()]
        lines += ["", f"| {_t(T_FILE)} | {_t(T_ROW)} | {_t(T_COLUMN)} | {_t(T_REGION)} | "
                      f"{_t(T_WHAT_IS_WRONG)} |", "|---|---:|---|---|---|"]
        for file, row, column, code, message, region in staged.problems(LISTED):
            lines.append(f"| {file} | {row} | {column or '—'} | {region or _t(T_WHOLE_UNION)} | "
                         f"{_cell(message)} (`{code}`) |")
        if total > LISTED:
            lines += ["", _t(N_("The first %(listed)s of %(total)s problems are listed; all are in the CSV file."),
                             listed=LISTED, total=total)]
    else:
        lines.append(_t(N_("None: the folder can be loaded.")))
    lines += ["", f"## {_t(T_BY_REGION)}", "",
              f"| {_t(T_REGION)} | {_t(T_ORGANISATIONS)} | {_t(T_MEMBERS)} | "
              f"{_t(T_CONSENTS_1_2_3)} | {_t(T_CARDS)} | {_t(T_OF_THEM)} | "
              f"{_t(T_PROBLEMS)} |", "|---|---:|---:|---|---:|---:|---:|"]
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
    lines = [check_report(staged, source, T_LOAD_OF).rstrip("\n"), "", f"## {_t(T_LOAD)}", ""]
    if result is None or not result.regions:
        lines.append(_t(N_("Nothing was loaded: the folder has problems that concern the whole union.")))
        return "\n".join(lines) + "\n"
    lines += [f"| {_t(T_REGION)} | {_t(T_RESULT)} | {_t(T_SECONDS)} |", "|---|---|---:|"]
    lines += [f"| {r.code} {r.name} | {_t(STATUS_TEXT[r.status])}{': ' + _cell(r.error) if r.error else ''} | "
              f"{r.seconds:.1f} |" for r in result.regions]
    lines += ["", f"## {_t(T_RECONCILIATION)}", ""]
    for item in reconciliations:
        if not item.differences:
            lines.append(f"- {item.region_org_code} {item.name}: {_t(T_NO_DIFFERENCES)}")
        for what, source_count, loaded in item.differences:
            lines.append(f"- {item.region_org_code} {item.name}: {reconciler_label(what)} — "
                         f"{_t(T_IN_THE_FILES_SOURCE_S_IN_THE_REGISTRY_LO, source=source_count, loaded=loaded)}")
    return "\n".join(lines) + "\n"


def write_problems_csv(staged: Staged, path) -> None:
    import csv

    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "row", "column", "code", "message", "region"])
        for record in staged.problems():
            writer.writerow(record)
