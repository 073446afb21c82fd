/** `name{labels} value` samples of a metric in a Prometheus text exposition. */
export function samples(text: string, name: string): { labels: string; value: number }[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
    .map((line) => {
      const match = /^[^{ ]+(\{[^}]*\})? (.+)$/.exec(line)!;
      return { labels: match[1] ?? '', value: Number(match[2]) };
    });
}

/** The value of one series, written `name{labels}` exactly as exposed (0 when absent). */
export function sample(text: string, series: string): number {
  const brace = series.indexOf('{');
  const name = brace < 0 ? series : series.slice(0, brace);
  const labels = brace < 0 ? '' : series.slice(brace);
  return samples(text, name).find((s) => s.labels === labels)?.value ?? 0;
}
