"use strict";
// Pulse overview: counts from GET /v1/pulse.
Signpost.start(
  (get) => get("/v1/pulse"),
  (pulse) => {
    const outcomes = pulse.by_outcome;
    Signpost.text("submitted", pulse.submitted);
    Signpost.text("routed", outcomes.routed);
    Signpost.text("escalated", outcomes.escalated_safeguarding + outcomes.escalated_ehc_assessment);
    Signpost.text("awaiting", outcomes.awaiting_decision);
    const counts = Signpost.OUTCOMES.map(([key]) => outcomes[key]);
    Signpost.chart(
      "outcomes-chart",
      [
        {
          type: "bar",
          x: Signpost.OUTCOMES.map(([, label]) => label),
          y: counts,
          hovertemplate: "%{x}: %{y}<extra></extra>",
        },
      ],
      { yaxis: Signpost.countAxis(counts, "referrals") },
    );
    const needs = Object.entries(pulse.by_need_code).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    Signpost.chart(
      "needs-chart",
      [{ type: "bar", x: needs.map(([code]) => code), y: needs.map(([, count]) => count), marker: { color: "#00703c" } }],
      { xaxis: { type: "category" }, yaxis: Signpost.countAxis(needs.map(([, count]) => count), "referrals") },
    );
  },
);
