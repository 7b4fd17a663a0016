/** Numbers as the tables print them. */

export function rate(perSecond: number): string {
  if (perSecond === 0) return "0";
  if (perSecond < 0.1) return perSecond.toFixed(3);
  if (perSecond < 10) return perSecond.toFixed(2);
  return perSecond.toFixed(1);
}

export function percent(share: number): string {
  const value = share * 100;
  return value >= 99.995 ? "100%" : `${value.toFixed(value >= 99 ? 2 : 1)}%`;
}

export function ms(value: number): string {
  if (value === 0) return "—";
  if (value < 1) return `${(value * 1000).toFixed(0)} µs`;
  if (value < 10) return `${value.toFixed(2)} ms`;
  if (value < 1000) return `${value.toFixed(1)} ms`;
  return `${(value / 1000).toFixed(2)} s`;
}

export function ago(fromMs: number, nowMs: number): string {
  const seconds = Math.max(0, (nowMs - fromMs) / 1000);
  if (seconds < 1.5) return "just now";
  if (seconds < 90) return `${seconds.toFixed(0)} s ago`;
  return `${(seconds / 60).toFixed(0)} min ago`;
}

export function clock(ms: number): string {
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}
