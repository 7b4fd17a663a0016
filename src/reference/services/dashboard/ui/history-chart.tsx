import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import type { HistoryPoint } from "../../../../../gen/meshkit/dashboard/v1/dashboard_pb.js";

function columns(history: readonly HistoryPoint[]): uPlot.AlignedData {
  return [
    history.map((point) => Number(point.time)),
    history.map((point) => point.traffic?.callsPerSecond ?? 0),
    history.map((point) => (point.traffic?.callsPerSecond ? point.traffic.p50Ms : null)),
    history.map((point) => (point.traffic?.callsPerSecond ? point.traffic.p99Ms : null)),
    history.map((point) => (point.traffic?.callsPerSecond ? point.traffic.successRate * 100 : null)),
  ];
}

/**
 * HistoryChart draws a service's calls/s (left axis), p50 and p99 latency (right axis, ms) and
 * success rate over the last minutes with uPlot, sized to its container.
 */
export function HistoryChart({ history }: { history: readonly HistoryPoint[] }) {
  const box = useRef<HTMLDivElement>(null);
  const chart = useRef<uPlot>(undefined);
  useEffect(() => {
    const element = box.current!;
    const plot = new uPlot(
      {
        width: Math.max(200, element.clientWidth),
        height: 180,
        legend: { live: false },
        cursor: { drag: { x: false, y: false } },
        // Always the last 10 minutes, however few points there are yet.
        scales: { x: { time: true, range: (_plot, _min, max) => [max - 600, max] }, ms: { auto: true }, pct: { range: [0, 100] } },
        axes: [
          { stroke: "#9aa4b2", grid: { stroke: "#2a3140" } },
          { scale: "calls", label: "calls/s", stroke: "#9aa4b2", grid: { stroke: "#2a3140" }, size: 50 },
          { scale: "ms", label: "ms", side: 1, stroke: "#9aa4b2", grid: { show: false }, size: 50 },
        ],
        series: [
          {},
          { label: "calls/s", scale: "calls", stroke: "#4cc38a", width: 2, fill: "rgba(76,195,138,0.12)" },
          { label: "p50 ms", scale: "ms", stroke: "#6ea8fe", width: 1.5 },
          { label: "p99 ms", scale: "ms", stroke: "#f5a524", width: 1.5 },
          { label: "success %", scale: "pct", stroke: "#e5484d", width: 1, dash: [4, 4] },
        ],
      },
      columns(history),
      element,
    );
    chart.current = plot;
    const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(200, element.clientWidth), height: 180 }));
    resize.observe(element);
    return () => {
      resize.disconnect();
      plot.destroy();
      chart.current = undefined;
    };
  }, []);
  useEffect(() => chart.current?.setData(columns(history)), [history]);
  return <div class="chart" ref={box} role="img" aria-label="Calls per second, p50 and p99 latency and success rate over the last 10 minutes" />;
}
