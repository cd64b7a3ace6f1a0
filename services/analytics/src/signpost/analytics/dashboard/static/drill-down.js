"use strict";
// Drill-down by need: GET /v1/pulse's need-code counts within the Code of Practice's broad areas.
const AREA_NAMES = {
  communication_and_interaction: "Communication and interaction",
  cognition_and_learning: "Cognition and learning",
  social_emotional_mental_health: "Social, emotional and mental health",
  sensory_and_physical: "Sensory and/or physical",
  null: "No broad area (OTH, NSA)",
};

Signpost.start(
  (get) => get("/v1/pulse"),
  (pulse) => {
    const areaOf = Signpost.vocabulary.broad_area_of;
    const rows = Object.entries(pulse.by_need_code)
      .map(([code, count]) => ({ code, count, area: AREA_NAMES[String(areaOf[code] ?? null)] }))
      .sort((a, b) => a.area.localeCompare(b.area) || b.count - a.count);
    const areas = [...new Set(rows.map((row) => row.area))];
    // One trace per need code, stacked within its broad area's bar.
    Signpost.chart(
      "areas-chart",
      rows.map((row) => ({
        type: "bar",
        name: row.code,
        x: [row.area],
        y: [row.count],
        hovertemplate: `${row.code}: %{y}<extra></extra>`,
      })),
      {
        barmode: "stack",
        xaxis: { categoryorder: "array", categoryarray: areas },
        yaxis: Signpost.countAxis(
          areas.map((area) => rows.filter((row) => row.area === area).reduce((sum, row) => sum + row.count, 0)),
          "need mentions",
        ),
      },
    );
    Signpost.table(
      "needs-table",
      rows.map((row) => [row.area, row.code, row.count, Signpost.percent(row.count, pulse.submitted)]),
      [2, 3],
    );
  },
);
