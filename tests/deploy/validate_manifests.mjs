// Validates rendered Kubernetes objects (YAML documents on stdin) against the
// Kubernetes OpenAPI schemas offline: kubernetes-models (npm) carries the
// API's schemas as JSON schema and checks an object with ajv; its
// prometheus-operator package does the same for ServiceMonitor and
// PrometheusRule. Kinds without a schema here (KServe's) are named, and
// passed only when listed in --unchecked.
//
//   kubectl kustomize DIR | node validate_manifests.mjs [--unchecked Kind,Kind]
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const unchecked = new Set((process.argv[process.argv.indexOf("--unchecked") + 1] ?? "").split(",").filter(Boolean));
if (!process.argv.includes("--unchecked")) unchecked.clear();

async function modelOf(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : [null, apiVersion];
  const candidates = group === "monitoring.coreos.com"
    ? [`@kubernetes-models/prometheus-operator/${group}/${version}/${kind}`]
    : [`kubernetes-models/${group ? group + "/" : ""}${version}/${kind}`];
  for (const path of candidates) {
    try {
      return (await import(path))[kind];
    } catch (e) {
      if (e.code !== "ERR_MODULE_NOT_FOUND" && e.code !== "ERR_PACKAGE_PATH_NOT_EXPORTED") throw e;
    }
  }
  return null;
}

let failures = 0;
let checked = 0;
for (const document of parseAllDocuments(readFileSync(0, "utf8"))) {
  const object = document.toJS();
  if (!object) continue;
  const name = `${object.kind} ${object.metadata?.name} (${object.apiVersion})`;
  const Model = await modelOf(object.apiVersion, object.kind);
  if (!Model) {
    if (unchecked.has(object.kind)) {
      console.log(`no schema offline, structure tested elsewhere: ${name}`);
      continue;
    }
    console.log(`NO SCHEMA: ${name}`);
    failures++;
    continue;
  }
  try {
    new Model(object).validate();
    checked++;
    console.log(`valid: ${name}`);
  } catch (e) {
    failures++;
    console.log(`INVALID: ${name}: ${e.message}`);
  }
}
console.log(`${checked} valid, ${failures} failed`);
process.exit(failures ? 1 : 0);
