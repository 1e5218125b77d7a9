/**
 * Builds a JavaScript sluice plugin into a component; run by `sluice plugin build` (the
 * crate `sluice-plugin-build`), not by hand:
 *
 *   node build.mjs <entry.js> <sdk dir> <wit dir> <node_modules dir> <out.wasm>
 *
 * Two steps: rolldown bundles the plugin and its imports into one ES module, with the bare
 * specifier `sluice` resolved to the SDK (so plugins `import * as sluice from "sluice"` in
 * any directory) and the WIT imports left external; componentize-js then embeds it in
 * StarlingMonkey for the `packed-transformer` world. The bundle's entry is a module of
 * our own that exports the plugin's `transform` (made by `sluice.transform(fn)`) as
 * `transformPacked`, through the SDK's `packedExport`, which refuses anything else.
 * Only the WASI features a plugin may use are kept: the host grants no HTTP, so `http`
 * and `fetch-event` are left out. When the caller found `weval` (`SLUICE_WEVAL_BIN`),
 * the engine's interpreter is compiled ahead of time for this plugin (componentize-js's
 * `enableAot`).
 */

import { writeFile } from "node:fs/promises";
import { join, dirname, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const args = process.argv.slice(2);
if (args.length !== 5) {
  console.error("usage: node build.mjs <entry.js> <sdk dir> <wit dir> <node_modules dir> <out.wasm>");
  process.exit(2);
}
const [entry, sdkDir, witDir, nodeModules, out] = args.map((arg) => resolve(arg));

const load = (path) => import(pathToFileURL(join(nodeModules, path)).href);
const { rolldown } = await load("rolldown/dist/index.mjs");
const { componentize } = await load("@bytecodealliance/componentize-js/src/componentize.js");

// Beside the staged SDK (the build's scratch directory), not beside the component.
const scratch = dirname(sdkDir);
const exports = join(scratch, "exports.js");
await writeFile(
  exports,
  `import * as plugin from ${JSON.stringify(entry)};
import { packedExport } from "sluice";
export const transformPacked = packedExport(plugin.transform);
`,
);
const bundle = await rolldown({
  input: exports,
  external: [/^sluice:/, /^wasi:/],
  resolve: { alias: { sluice: join(sdkDir, "sluice.js") } },
  logLevel: "warn",
});
const { output } = await bundle.generate({ format: "esm" });
await bundle.close();
const bundled = join(scratch, "plugin.bundle.js");
await writeFile(bundled, output[0].code);

const weval = process.env.SLUICE_WEVAL_BIN;
if (!weval) {
  console.error(
    "note: built without ahead-of-time compilation (no weval in $SLUICE_WEVAL or on PATH, " +
      "or SLUICE_JS_AOT=0); `cargo install weval --version 0.5.1` makes plugins ~1.2x faster",
  );
}
const { component } = await componentize({
  sourcePath: bundled,
  witPath: witDir,
  worldName: "packed-transformer",
  disableFeatures: ["http", "fetch-event"],
  ...(weval ? { enableAot: true, wevalBin: weval } : {}),
});
await writeFile(out, component);
