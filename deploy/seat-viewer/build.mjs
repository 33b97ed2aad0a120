// Bundle Debian's noVNC (the `novnc` package, /usr/share/novnc) into one minified ES module whose name carries a
// hash of its content, and write dist/manifest.json naming it. Why: a fresh browser otherwise fetches noVNC's
// 41 modules one import level at a time (0.7–1.2 s before the seat's websocket opens); one file with a
// content-hashed name can be cached for good ("immutable"), since a new noVNC gets a new name.
// Run by deploy/lib.sh's build_seat_viewer (deploy/embedded.sh and tests/run.sh): `npm ci && npm run build`.
import { rmSync, writeFileSync } from "node:fs";
import { basename } from "node:path";
import { build } from "esbuild";

const novnc = process.env.NOVNC_DIR || "/usr/share/novnc";
const outdir = process.env.SEAT_VIEWER_OUT || new URL("dist/", import.meta.url).pathname;

rmSync(outdir, { recursive: true, force: true });
const result = await build({
  entryPoints: { "novnc-rfb": `${novnc}/core/rfb.js` },
  bundle: true,
  format: "esm",
  minify: true,
  target: "es2020",
  entryNames: "[name]-[hash]",
  outdir,
  metafile: true,
  logLevel: "warning",
});
const [output] = Object.keys(result.metafile.outputs).filter((path) => path.endsWith(".js"));
writeFileSync(`${outdir}/manifest.json`, JSON.stringify({ rfb: basename(output) }) + "\n");
console.log(`seat viewer: ${basename(output)} (${result.metafile.outputs[output].bytes} bytes)`);
