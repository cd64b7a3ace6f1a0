"use strict";
// Drill-down: GET /v1/pulse/breakdown for the measure, group-by and filters in the URL; with
// `compare`, the same breakdown for a second locality, side by side.
const { view, path, PERIOD, FILTERS, vocabulary } = Signpost;
const form = document.getElementById("view-form");
const options = (select, values) =>
  select.append(...values.map((value) => Object.assign(document.createElement("option"), { value, textContent: value })));
options(form.elements.need, vocabulary.need_codes);
options(form.elements.sector, vocabulary.sectors);

function chosen() {
  const locality = view().get("locality");
  const compare = locality ? view().get("compare") : null;
  return {
    measure: view().get("measure") || "submitted",
    groupBy: view().get("group_by") || (locality ? "need" : "locality"),
    localities: compare ? [locality, compare] : [locality],
  };
}

// A locality typed by hand that no referral came from in the period: most likely misspelt.
function unknown(known, answers) {
  const referred = new Set(known.rows.map((row) => row.group));
  const missing = answers.map((answer) => answer.filters.locality).filter((locality) => locality && !referred.has(locality));
  return missing.length
    ? ` No referral came from ${missing.join(" or ")} in this period: check the spelling (the field offers the localities that referred).`
    : "";
}

Signpost.start(
  async (get) => {
    const { measure, groupBy, localities } = chosen();
    const others = FILTERS.filter((name) => name !== "locality");
    const [measures, known, ...answers] = await Promise.all([
      Signpost.measures(get),
      get(path("/v1/pulse/breakdown", PERIOD, { measure: "submitted", group_by: "locality" })),
      ...localities.map((locality) =>
        get(path("/v1/pulse/breakdown", [...PERIOD, ...others], { measure, group_by: groupBy, locality })),
      ),
    ]);
    return { measures, known, answers };
  },
  ({ measures, known, answers }) => {
    const { show, table } = Signpost;
    if (!form.elements.measure.options.length) {
      options(form.elements.measure, Object.keys(measures));
      form.elements.measure.value = answers[0].measure;
    }
    document.getElementById("localities").replaceChildren(
      ...known.rows.map((row) => Object.assign(document.createElement("option"), { value: row.group })),
    );
    const first = answers[0];
    const told = first.suppression;
    const kind = measures[first.measure].kind;
    Signpost.notice(first);
    const name = (answer) => answer.filters.locality || "All localities";
    const filters = Object.entries(first.filters).map(([k, v]) => `${k} ${v}`).join(", ");
    Signpost.text(
      "described",
      `${first.description} ${first.period.from} to ${first.period.to}${filters ? `, ${filters}` : ""}` +
        (answers.length > 1 ? `, against locality ${answers[1].filters.locality}` : "") +
        (first.partition ? ". Each referral falls in one group, so the groups add up to the total." : ".") +
        (view().get("compare") && !view().get("locality") ? " To compare two localities, choose the first one too." : "") +
        unknown(known, answers),
    );

    // Every group any answer has, in order, with its display name.
    const groups = new Map();
    for (const answer of answers) for (const row of answer.rows) groups.set(row.group, row.label);
    const ids = [...groups.keys()];
    const named = Signpost.names([...groups]);
    const nameOf = new Map(ids.map((group, at) => [group, named[at]]));
    // A group missing from one locality's answer had no referrals there: a count of 0, a rate undefined.
    const none = { value: { value: kind === "count" ? 0 : null }, base: { value: 0 } };
    const rowOf = (answer, group) => answer.rows.find((row) => row.group === group) ?? none;

    // Many groups (60 settings) make an unreadable chart: past CHARTED it shows those with the
    // highest figure in either locality; the table has every group.
    const shown = (figure) => (figure.suppressed || figure.value === null ? -Infinity : figure.value);
    const highest = (group) => ({ value: Math.max(...answers.map((answer) => shown(rowOf(answer, group).value))) });
    const charted = ids.length > Signpost.CHARTED ? Signpost.largest(ids, highest, (group) => nameOf.get(group)) : ids;
    const measure = first.measure.replaceAll("_", " ");
    Signpost.text(
      "breakdown-caption",
      `${measure} by ${first.group_by}` +
        (charted.length < ids.length
          ? `: the ${charted.length} highest of ${ids.length} groups charted; the table below has every group`
          : ""),
    );
    Signpost.bars(
      "breakdown-chart",
      charted,
      answers.map((answer) => ({
        name: name(answer),
        figures: charted.map((group) => rowOf(answer, group).value),
      })),
      { kind, notice: told, title: measure, labels: charted.map((group) => nameOf.get(group)) },
    );

    const withBase = kind !== "count";
    document.getElementById("breakdown-head").replaceChildren(
      ...[first.group_by, ...answers.flatMap((answer) => (withBase ? [name(answer), "over"] : [name(answer)]))].map(
        (heading, index) =>
          Object.assign(document.createElement("th"), { scope: "col", textContent: heading, className: index ? "num" : "" }),
      ),
    );
    const cells = (row) => {
      const value = show(row.value, kind, told);
      return withBase ? [value, show(row.base, "count", told)] : [value];
    };
    const columns = answers.flatMap((_, index) => (withBase ? [1 + 2 * index, 2 + 2 * index] : [1 + index]));
    table(
      "breakdown-table",
      [
        ...ids.map((group) => [nameOf.get(group), ...answers.flatMap((answer) => cells(rowOf(answer, group)))]),
        ["Total", ...answers.flatMap((answer) => cells(answer.total))],
      ],
      columns,
    );
  },
);
