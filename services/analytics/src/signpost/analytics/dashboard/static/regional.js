"use strict";
// Regional comparison: GET /v1/benchmarking for each measure below, every local area side by side.
const COMPARED = ["submitted", "escalation_rate", "ehc_assessment_rate", "unmatched_rate", "acceptance_rate", "days_to_start", "needs_change"];

// One chart per measure, made once.
const holder = document.getElementById("regional-charts");
for (const measure of COMPARED) {
  const figure = document.createElement("figure");
  const caption = Object.assign(document.createElement("figcaption"), { id: `${measure}-caption` });
  figure.append(caption, Object.assign(document.createElement("div"), { className: "chart", id: `${measure}-chart` }));
  holder.append(figure);
}
document.getElementById("regional-head").append(
  ...COMPARED.map((measure) =>
    Object.assign(document.createElement("th"), { scope: "col", className: "num", textContent: measure.replaceAll("_", " ") }),
  ),
);

Signpost.start(
  async (get) => {
    const { path, PERIOD } = Signpost;
    const [measures, ...answers] = await Promise.all([
      Signpost.measures(get),
      ...COMPARED.map((measure) => get(path("/v1/benchmarking", PERIOD, { measure }))),
    ]);
    return { measures, answers };
  },
  ({ measures, answers }) => {
    const { show } = Signpost;
    const told = answers[0].suppression;
    Signpost.notice(answers[0]);
    const tenants = answers[0].areas.map((area) => area.tenant);
    Signpost.text("period", `${answers[0].period.from} to ${answers[0].period.to}.`);
    answers.forEach((answer) => {
      const kind = measures[answer.measure].kind;
      Signpost.text(`${answer.measure}-caption`, answer.description);
      Signpost.bars(
        `${answer.measure}-chart`,
        answer.areas.map((area) => area.tenant),
        [{ name: answer.measure.replaceAll("_", " "), figures: answer.areas.map((area) => area.value) }],
        {
          kind,
          notice: told,
          title: kind === "mean" ? "mean" : kind === "rate" ? "share" : "referrals",
          layout: { height: 260 },
        },
      );
    });
    Signpost.table(
      "regional-table",
      tenants.map((tenant) => [
        tenant,
        ...answers.map((answer) =>
          show(answer.areas.find((area) => area.tenant === tenant)?.value, measures[answer.measure].kind, told),
        ),
      ]),
      COMPARED.map((_, index) => index + 1),
    );
  },
);
