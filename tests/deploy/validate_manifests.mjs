// Validates rendered Kubernetes objects (YAML documents on stdin) against the
// Kubernetes OpenAPI schemas offline: kubernetes-models (npm) carries the
// API's schemas as JSON schema and checks an object with ajv; its
// prometheus-operator package does the same for ServiceMonitor and
// PrometheusRule. KServe's kinds are checked against kserve_schemas.mjs
// with ajv, and their containers against kubernetes-models' Container. Kinds
// without a schema here are named, and passed only when listed in --unchecked.
//
//   kubectl kustomize DIR | node validate_manifests.mjs [--unchecked Kind,Kind]
//   node validate_manifests.mjs --expect-invalid < BAD.yaml   (passes if every object fails)
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import Ajv from "ajv";
import { Container } from "kubernetes-models/v1/Container";
import { kserveContainers, kserveSchemas } from "./kserve_schemas.mjs";

const unchecked = new Set((process.argv[process.argv.indexOf("--unchecked") + 1] ?? "").split(",").filter(Boolean));
if (!process.argv.includes("--unchecked")) unchecked.clear();
const expectInvalid = process.argv.includes("--expect-invalid");

// A model-like class for a KServe kind: validate() throws as kubernetes-models' do.
function kserveModelOf(apiVersion, kind) {
  const schema = kserveSchemas[`${apiVersion} ${kind}`];
  if (!schema) return null;
  const check = new Ajv({ allErrors: true, strict: false }).compile(schema);
  return class {
    constructor(object) {
      this.object = object;
    }
    validate() {
      if (!check(this.object)) {
        throw new Error(check.errors.map((e) => `${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params)}`).join("; "));
      }
      for (const container of kserveContainers(this.object)) new Container(container).validate();
    }
  };
}

async function modelOf(apiVersion, kind) {
  if (apiVersion.startsWith("serving.kserve.io/")) return kserveModelOf(apiVersion, kind);
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
if (expectInvalid) process.exit(checked || !failures ? 1 : 0);
process.exit(failures ? 1 : 0);
