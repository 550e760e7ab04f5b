// Copies the browser build of dagre (with graphlib inside) and its licence
// from node_modules into static/vendor, where the server embeds them.
import { copyFileSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = join(here, "node_modules", "@dagrejs", "dagre");
const { version } = JSON.parse(readFileSync(join(pkg, "package.json"), "utf8"));
copyFileSync(join(pkg, "dist", "dagre.min.js"), join(here, "static", "vendor", "dagre.min.js"));
copyFileSync(join(pkg, "LICENSE"), join(here, "static", "vendor", "dagre.LICENSE"));
console.log(`vendored @dagrejs/dagre ${version} into static/vendor`);
