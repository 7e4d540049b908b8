// KServe's ClusterServingRuntime (serving.kserve.io/v1alpha1) and
// InferenceService (serving.kserve.io/v1beta1) as JSON schemas, for
// validate_manifests.mjs. No package carries KServe's schemas, so these are
// written out here from KServe's published CRDs and Go types (kserve/kserve
// at aaac4e294dae2c7b1aa1886447793f3aa1c30912, Apache-2.0):
//   charts/kserve-crd/templates/serving.kserve.io_clusterservingruntimes.yaml
//   charts/kserve-crd/templates/serving.kserve.io_inferenceservices.yaml
//   pkg/constants/constants.go (the protocol versions, which KServe's webhook enforces)
// They name every field of the specs with its type, and reject any other
// field: the API server does too, under kubectl's default strict field
// validation. Fields whose type is a Kubernetes type (containers, and a
// predictor's model, which is a container with KServe's fields added) are
// checked by kubernetes-models' own schemas in validate_manifests.mjs
// (kserveContainers below says where they are).

const string = { type: "string" };
const boolean = { type: "boolean" };
const integer = { type: "integer" };
const object = { type: "object" };
const array = { type: "array" };
const stringMap = { type: "object", additionalProperties: string };
const protocolVersion = { enum: ["v1", "v2", "grpc-v1", "grpc-v2"] };

// The fields of a Kubernetes container, as the CRDs list them (kubernetes-models'
// Container schema checks their values but lets unknown fields pass).
const containerFields = [
  "args", "command", "env", "envFrom", "image", "imagePullPolicy", "lifecycle", "livenessProbe", "name", "ports",
  "readinessProbe", "resizePolicy", "resources", "restartPolicy", "restartPolicyRules", "securityContext",
  "startupProbe", "stdin", "stdinOnce", "terminationMessagePath", "terminationMessagePolicy", "tty",
  "volumeDevices", "volumeMounts", "workingDir",
];
const container = {
  type: "object",
  additionalProperties: false,
  properties: Object.fromEntries(containerFields.map((name) => [name, {}])),
};

const servingRuntimeSpec = {
  type: "object",
  required: ["containers"],
  additionalProperties: false,
  properties: {
    affinity: object,
    annotations: stringMap,
    builtInAdapter: object,
    containers: { type: "array", minItems: 1, items: container },
    disabled: boolean,
    grpcDataEndpoint: string,
    grpcEndpoint: string,
    hostIPC: boolean,
    httpDataEndpoint: string,
    imagePullSecrets: array,
    labels: stringMap,
    multiModel: boolean,
    nodeSelector: stringMap,
    protocolVersions: { type: "array", items: protocolVersion },
    replicas: integer,
    resourceClaims: array,
    schedulerName: string,
    storageHelper: object,
    supportedModelFormats: {
      type: "array",
      items: {
        type: "object",
        required: ["name"],
        additionalProperties: false,
        properties: { autoSelect: boolean, name: string, priority: { type: "integer", minimum: 1 }, version: string },
      },
    },
    tolerations: array,
    volumes: array,
    workerSpec: object,
  },
};

// The fields a predictor's `model` adds to a Kubernetes container.
export const modelOnlyFields = ["modelFormat", "protocolVersion", "runtime", "runtimeVersion", "storage", "storageUri"];

const model = {
  type: "object",
  additionalProperties: false,
  properties: {
    ...container.properties,
    confidential: boolean,
    modelFormat: {
      type: "object",
      required: ["name"],
      additionalProperties: false,
      properties: { name: string, version: string },
    },
    protocolVersion,
    runtime: string,
    runtimeVersion: string,
    storage: {
      type: "object",
      additionalProperties: false,
      properties: { key: string, parameters: stringMap, path: string, schemaPath: string },
    },
    storageUri: string,
  },
};

// A predictor is a pod spec with KServe's component fields; the pod spec's
// own fields are listed by name (their Kubernetes types are not rechecked).
const podSpecFields = [
  "activeDeadlineSeconds", "affinity", "automountServiceAccountToken", "dnsConfig", "dnsPolicy",
  "enableServiceLinks", "hostAliases", "hostIPC", "hostNetwork", "hostPID", "hostUsers", "hostname",
  "hostnameOverride", "imagePullSecrets", "initContainers", "nodeName", "nodeSelector", "os", "overhead",
  "preemptionPolicy", "priority", "priorityClassName", "readinessGates", "resourceClaims", "resources",
  "restartPolicy", "runtimeClassName", "schedulerName", "schedulingGates", "securityContext", "serviceAccount",
  "serviceAccountName", "setHostnameAsFQDN", "shareProcessNamespace", "subdomain", "terminationGracePeriodSeconds",
  "tolerations", "topologySpreadConstraints", "volumes",
];
const frameworkFields = [
  "huggingface", "lightgbm", "onnx", "paddle", "pmml", "pytorch", "sklearn", "tensorflow", "triton", "xgboost",
];
const predictor = {
  type: "object",
  additionalProperties: false,
  properties: {
    ...Object.fromEntries([...podSpecFields, ...frameworkFields].map((name) => [name, {}])),
    annotations: stringMap,
    autoScaling: object,
    containers: { type: "array", items: container },
    batcher: object,
    canaryTrafficPercent: { type: "integer", minimum: 0, maximum: 100 },
    containerConcurrency: { type: "integer", minimum: 0 },
    deploymentStrategy: object,
    labels: stringMap,
    logger: object,
    maxReplicas: { type: "integer", minimum: 0 },
    minReplicas: { type: "integer", minimum: 0 },
    model,
    name: string,
    scaleMetric: { enum: ["cpu", "memory", "concurrency", "rps"] },
    scaleMetricType: string,
    scaleTarget: { type: "integer", minimum: 0 },
    storageContainerName: string,
    storageUris: array,
    timeout: integer,
    workerSpec: object,
  },
};

const inferenceServiceSpec = {
  type: "object",
  required: ["predictor"],
  additionalProperties: false,
  properties: { canary: object, explainer: object, predictor, transformer: object },
};

function resource(spec, namespaced) {
  return {
    type: "object",
    required: ["apiVersion", "kind", "metadata", "spec"],
    additionalProperties: false,
    properties: {
      apiVersion: string,
      kind: string,
      metadata: {
        type: "object",
        required: ["name"],
        properties: { name: { type: "string", pattern: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", maxLength: 63 } },
      },
      spec,
      status: object,
    },
    ...(namespaced ? {} : { not: { properties: { metadata: { required: ["namespace"] } } } }),
  };
}

/// Schemas by "apiVersion kind".
export const kserveSchemas = {
  "serving.kserve.io/v1alpha1 ClusterServingRuntime": resource(servingRuntimeSpec, false),
  "serving.kserve.io/v1alpha1 ServingRuntime": resource(servingRuntimeSpec, true),
  "serving.kserve.io/v1beta1 InferenceService": resource(inferenceServiceSpec, true),
};

/// The Kubernetes containers inside a KServe object, for kubernetes-models'
/// Container schema: a runtime's containers, a predictor's containers, and a
/// predictor's model without KServe's fields (its name is optional there).
export function kserveContainers(object) {
  const spec = object.spec ?? {};
  if (object.kind.endsWith("ServingRuntime")) return spec.containers ?? [];
  const found = [...(spec.predictor?.containers ?? [])];
  if (spec.predictor?.model) {
    const container = { name: "kserve-container", ...spec.predictor.model };
    for (const field of modelOnlyFields) delete container[field];
    found.push(container);
  }
  return found;
}
