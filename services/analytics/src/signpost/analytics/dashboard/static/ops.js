"use strict";
// Ops: GET /v1/ops (roles ops and admin).
Signpost.start(
  (get) => get("/v1/ops"),
  (ops) => {
    // A failed sample is said whether or not one ever succeeded: Kafka down from start-up too.
    Signpost.text(
      "sampled",
      ops.sampled_at
        ? `Streams sampled ${Signpost.when(ops.sampled_at)}, every ${ops.sample_interval_s} s.` +
            (ops.error ? ` Latest sample failed: ${ops.error}.` : "")
        : ops.error
          ? `The streams could not be sampled yet: ${ops.error}.`
          : "The streams have not been sampled yet.",
    );
    document.getElementById("sampled").dataset.kind = ops.error ? "error" : "";
    Signpost.table(
      "health-table",
      ops.health.map((s) => [
        s.service,
        s.status,
        Object.entries(s.checks)
          .map(([name, value]) => `${name}: ${value}`)
          .join(", "),
      ]),
    );

    const groups = [...new Set(ops.lag.map((row) => row.group))];
    Signpost.chart(
      "lag-chart",
      groups.map((group, index) => {
        const rows = ops.lag.filter((row) => row.group === group);
        return {
          ...Signpost.barStyle(index),
          name: group,
          x: rows.map((row) => `${row.topic} [${row.partition}]`),
          y: rows.map((row) => row.lag),
          customdata: rows.map((row) => [row.high_watermark, row.committed ?? "none"]),
          hovertemplate: "%{x}: lag %{y} (high %{customdata[0]}, committed %{customdata[1]})<extra>%{fullData.name}</extra>",
        };
      }),
      { barmode: "group", xaxis: { type: "category" }, yaxis: Signpost.countAxis(ops.lag.map((row) => row.lag), "messages behind") },
    );

    const times = ops.history.map((point) => point.at);
    Signpost.chart(
      "lag-history-chart",
      groups.map((group, index) => ({
        ...Signpost.lineStyle(index),
        name: group,
        x: times,
        y: ops.history.map((point) => point.lag[group] ?? null),
      })),
      {
        yaxis: Signpost.countAxis(ops.history.flatMap((point) => Object.values(point.lag)), "messages behind"),
        xaxis: { title: { text: "UTC" } },
      },
    );
    const topics = ops.topics.map((topic) => topic.topic);
    Signpost.chart(
      "rate-chart",
      topics.map((topic, index) => ({
        ...Signpost.lineStyle(index),
        name: topic,
        x: times,
        y: ops.history.map((point) => point.events_per_second[topic] ?? 0),
      })),
      { yaxis: { title: { text: "events/s" }, rangemode: "tozero" }, xaxis: { title: { text: "UTC" } } },
    );
    // The charts as figures, for those who cannot see them.
    Signpost.table(
      "lag-table",
      ops.lag.map((row) => [row.group, row.topic, row.partition, row.high_watermark, row.committed ?? "none", row.lag]),
      [2, 3, 4, 5],
    );
    const latestAndHighest = (values, format = String) =>
      values.length ? [format(values.at(-1)), format(Math.max(...values))] : ["–", "–"];
    Signpost.table(
      "history-table",
      [
        ...groups.map((group) => [
          group,
          "messages behind",
          ...latestAndHighest(ops.history.map((point) => point.lag[group] ?? 0)),
        ]),
        ...topics.map((topic) => [
          topic,
          "events/s",
          ...latestAndHighest(ops.history.map((point) => point.events_per_second[topic] ?? 0), (v) => v.toFixed(2)),
        ]),
      ],
      [2, 3],
    );
    Signpost.table(
      "topics-table",
      ops.topics.map((t) => [
        t.topic,
        t.partitions,
        t.retained,
        t.events_per_second === null ? "–" : t.events_per_second.toFixed(2),
        Signpost.when(t.last_event_at),
      ]),
      [1, 2, 3],
    );
    Signpost.text("dead-letters-total", ops.dead_letters.total ?? "unknown");
    Signpost.text("dead-letters-topic", ops.dead_letters.topic);
    Signpost.table("dead-letters-table", Object.entries(ops.dead_letters.by_service), [1]);
  },
);
