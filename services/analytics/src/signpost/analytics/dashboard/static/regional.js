"use strict";
// Regional comparison: GET /v1/pulse?tenant=… for each local area named in ?tenants=.
const TENANT = /^[A-Za-z0-9_-]{1,32}$/;
const requested = () =>
  (new URLSearchParams(location.search).get("tenants") || "")
    .split(",")
    .map((code) => code.trim())
    .filter((code) => TENANT.test(code));

const input = document.getElementById("tenants-input");
input.value = requested().join(", ");

Signpost.start(
  async (get) => {
    const own = await get("/v1/pulse");
    const others = requested().filter((code) => code !== own.tenant);
    return [own, ...(await Promise.all(others.map((code) => get(`/v1/pulse?tenant=${encodeURIComponent(code)}`))))];
  },
  (pulses) => {
    if (!input.value) input.value = pulses[0].tenant;
    const tenants = pulses.map((pulse) => pulse.tenant);
    const escalated = (o) => o.escalated_safeguarding + o.escalated_ehc_assessment;
    const measures = [
      ["Submitted", (p) => p.submitted],
      ["Routed", (p) => p.by_outcome.routed],
      ["Unmatched", (p) => p.by_outcome.unmatched],
      ["Escalated", (p) => escalated(p.by_outcome)],
      ["Awaiting", (p) => p.by_outcome.awaiting_decision],
    ];
    Signpost.chart(
      "regional-chart",
      measures.map(([name, value]) => ({ type: "bar", name, x: tenants, y: pulses.map(value) })),
      {
        barmode: "group",
        xaxis: { type: "category" },
        yaxis: Signpost.countAxis(pulses.map((p) => p.submitted), "referrals"),
      },
    );
    Signpost.table(
      "regional-table",
      pulses.map((p) => [p.tenant, ...measures.map(([, value]) => value(p))]),
      [1, 2, 3, 4, 5],
    );
  },
);
