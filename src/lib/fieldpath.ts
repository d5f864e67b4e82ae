// How a configuration error names the field it is about (policy files, the preboot config):
// `drives[0].ranges[2].action`, `token.env["1X"]`.

export type Path = ReadonlyArray<PropertyKey>;

/** drives[0].ranges[2].count; keys.name (or keys["odd name"]). */
export function formatPath(path: Path): string {
  let s = "";
  for (const p of path) {
    if (typeof p === "number") s += `[${p}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(String(p))) s += s ? `.${String(p)}` : String(p);
    else s += `[${JSON.stringify(String(p))}]`;
  }
  return s || "(top level)";
}
