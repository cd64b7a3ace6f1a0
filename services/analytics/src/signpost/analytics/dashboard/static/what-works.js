"use strict";
// What works: of the referrals routing has decided, how many could be offered early help
// from the Local Offer (GET /v1/pulse's outcomes).
Signpost.start(
  (get) => get("/v1/pulse"),
  (pulse) => {
    const o = pulse.by_outcome;
    const escalated = o.escalated_safeguarding + o.escalated_ehc_assessment;
    const decided = o.routed + o.unmatched + escalated;
    Signpost.text("offered-share", Signpost.percent(o.routed, decided));
    Signpost.text("unmatched-share", Signpost.percent(o.unmatched, decided));
    Signpost.text("escalated-share", Signpost.percent(escalated, decided));
    const decisions = Signpost.OUTCOMES.filter(([key]) => key !== "awaiting_decision");
    Signpost.chart("decisions-chart", [
      {
        type: "pie",
        hole: 0.45,
        sort: false,
        labels: decisions.map(([, label]) => label),
        values: decisions.map(([key]) => o[key]),
        textinfo: "label+value",
      },
    ]);
  },
);
