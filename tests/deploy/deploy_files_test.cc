// The compose file and the Kubernetes manifests: structure, references to
// files in the repository, and the rendered objects' probes, resources and
// security context. No Docker engine or cluster runs here.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "server/service/config/server_config.h"
#include "tests/command_run.h"

namespace detr::service {
namespace {

const std::string kSource = DETR_SOURCE_DIR;

TEST(ComposeTest, ServicesPortsAndMountedFilesExist) {
  const auto compose = YAML::LoadFile(kSource + "/docker-compose.yml");
  const auto services = compose["services"];
  for (const char* name : {"detr-server", "prometheus", "grafana", "loadgen"}) {
    EXPECT_TRUE(services[name]) << "no service " << name;
  }
  EXPECT_EQ(services["loadgen"]["profiles"][0].as<std::string>(), "load");
  std::set<std::string> server_ports;
  for (const auto& port : services["detr-server"]["ports"]) server_ports.insert(port.as<std::string>());
  EXPECT_TRUE(server_ports.count("50051:50051") && server_ports.count("9464:9464"));
  EXPECT_TRUE(
      std::filesystem::exists(kSource + "/" + services["detr-server"]["build"]["dockerfile"].as<std::string>()));
  for (const auto& service : services) {
    for (const auto& volume : service.second["volumes"]) {
      const auto spec = volume.as<std::string>();
      const auto host = spec.substr(0, spec.find(':'));
      EXPECT_TRUE(std::filesystem::exists(kSource + "/" + host)) << service.first.as<std::string>() << ": " << host;
    }
  }
  // The pieces point at each other by the compose service names.
  const auto prometheus = YAML::LoadFile(kSource + "/deploy/prometheus/prometheus.yml");
  EXPECT_EQ(prometheus["scrape_configs"][0]["static_configs"][0]["targets"][0].as<std::string>(), "detr-server:9464");
  const auto datasource = YAML::LoadFile(kSource + "/deploy/grafana/provisioning/datasources/prometheus.yml");
  EXPECT_EQ(datasource["datasources"][0]["url"].as<std::string>(), "http://prometheus:9090");
  // The server's --config is one of the mounted configs
  // (/usr/share/detr/${DETR_SERVER_CONFIG:-detr-server.yaml}), and each of
  // those is a valid config whose weights exist.
  const auto command = services["detr-server"]["command"].as<std::vector<std::string>>();
  ASSERT_EQ(command.size(), 2u);
  EXPECT_EQ(command[1], "/usr/share/detr/${DETR_SERVER_CONFIG:-detr-server.yaml}");
  std::set<std::string> mounted_configs;
  for (const auto& volume : services["detr-server"]["volumes"]) {
    const auto spec = volume.as<std::string>();
    if (spec.find(".yaml:/usr/share/detr/") != std::string::npos) {
      mounted_configs.insert(spec.substr(0, spec.find(':')));
    }
  }
  EXPECT_EQ(mounted_configs, (std::set<std::string>{"./deploy/detr-server.yaml", "./deploy/detr-server-large.yaml"}));
  for (const auto& file : mounted_configs) {
    const auto config = ServerConfig::FromFile(kSource + "/" + file);
    for (const auto& model : config.models) {
      EXPECT_TRUE(std::filesystem::exists(model.weights)) << file << ": " << model.name << ": " << model.weights;
    }
  }
}

// Under compose.tls.yml the gRPC port refuses plaintext, so the image's
// health check (detr-client health, no flags) must speak TLS: the override
// gives detr-client the CA through its environment, a file of the mounted
// folder.
TEST(ComposeTest, TlsOverrideChecksHealthOverTls) {
  const auto tls = YAML::LoadFile(kSource + "/deploy/docker/compose.tls.yml");
  const auto server = tls["services"]["detr-server"];
  const auto command = server["command"].as<std::vector<std::string>>();
  ASSERT_NE(std::find(command.begin(), command.end(), "--tls-cert"), command.end());
  const auto ca = server["environment"]["DETR_CLIENT_TLS_CA"];
  ASSERT_TRUE(ca) << "the image's plaintext health check would be refused by the TLS port";
  EXPECT_EQ(ca.as<std::string>().rfind("/etc/detr/tls/", 0), 0u) << ca.as<std::string>();
  std::ifstream dockerfile(kSource + "/deploy/docker/Dockerfile");
  const std::string text((std::istreambuf_iterator<char>(dockerfile)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("\"detr-client\", \"--target\", \"127.0.0.1:50051\""), std::string::npos);
}

// The image installs deploy/models as /usr/share/detr/models: a config for the
// pods reads here with that prefix mapped back to the source tree.
std::string InSourceTree(std::string config) {
  const std::string image_dir = "/usr/share/detr/";
  for (auto at = config.find(image_dir); at != std::string::npos; at = config.find(image_dir, at)) {
    config.replace(at, image_dir.size(), kSource + "/deploy/");
  }
  return config;
}

std::vector<YAML::Node> Render(const std::string& dir) {
  const auto run = testing::RunCommand("kubectl kustomize " + kSource + "/" + dir + " 2>&1");
  EXPECT_EQ(run.exit_code, 0) << run.output;
  return YAML::LoadAll(run.output);
}

const YAML::Node* Find(const std::vector<YAML::Node>& objects, const std::string& kind, const std::string& name = "") {
  for (const auto& object : objects) {
    if (object["kind"].as<std::string>() == kind &&
        (name.empty() || object["metadata"]["name"].as<std::string>() == name)) {
      return &object;
    }
  }
  return nullptr;
}

class KubernetesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::system("command -v kubectl > /dev/null") != 0) GTEST_SKIP() << "kubectl is not installed";
  }
};

TEST_F(KubernetesTest, BaseRendersWithProbesResourcesAndSecurity) {
  const auto objects = Render("deploy/k8s/base");
  for (const char* kind : {"Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ConfigMap"}) {
    EXPECT_NE(Find(objects, kind), nullptr) << kind;
  }
  // Applies on a cluster without the Prometheus operator's CRDs.
  for (const char* kind : {"ServiceMonitor", "PrometheusRule"}) EXPECT_EQ(Find(objects, kind), nullptr) << kind;
  const auto* deployment = Find(objects, "Deployment");
  ASSERT_NE(deployment, nullptr);
  const auto pod = (*deployment)["spec"]["template"]["spec"];
  const auto container = pod["containers"][0];
  for (const char* probe : {"readinessProbe", "livenessProbe", "startupProbe"}) {
    EXPECT_EQ(container[probe]["grpc"]["port"].as<int>(), 50051) << probe;
  }
  // An image a cluster can pull (a registry, through kustomize's images:),
  // and no replica count to fight the HPA's.
  const auto image = container["image"].as<std::string>();
  EXPECT_NE(image.find('/'), std::string::npos) << image;
  EXPECT_FALSE((*deployment)["spec"]["replicas"]) << "the HPA owns the replica count";
  for (const char* level : {"requests", "limits"}) {
    EXPECT_TRUE(container["resources"][level]["cpu"] && container["resources"][level]["memory"]) << level;
  }
  EXPECT_TRUE(pod["securityContext"]["runAsNonRoot"].as<bool>());
  EXPECT_TRUE(container["securityContext"]["readOnlyRootFilesystem"].as<bool>());
  EXPECT_FALSE(container["securityContext"]["allowPrivilegeEscalation"].as<bool>());
  EXPECT_EQ(container["securityContext"]["capabilities"]["drop"][0].as<std::string>(), "ALL");
  EXPECT_TRUE(pod["topologySpreadConstraints"].IsSequence());

  // The config the pods mount is valid, and the grace period outlasts its drain.
  const auto* config_map = Find(objects, "ConfigMap");
  ASSERT_NE(config_map, nullptr);
  const auto config = ServerConfig::FromText(InSourceTree((*config_map)["data"]["detr-server.yaml"].as<std::string>()),
                                             "configmap", ".");
  const int drain = static_cast<int>(config.drain_timeout.count() / 1000);
  // exec sleep: the sleep action needs Kubernetes 1.30.
  const auto pre_stop_command = container["lifecycle"]["preStop"]["exec"]["command"].as<std::vector<std::string>>();
  ASSERT_EQ(pre_stop_command.size(), 2u);
  EXPECT_EQ(pre_stop_command[0], "sleep");
  const int pre_stop = std::stoi(pre_stop_command[1]);
  EXPECT_GT(pod["terminationGracePeriodSeconds"].as<int>(), drain + pre_stop);
  EXPECT_EQ(pod["volumes"][0]["configMap"]["name"].as<std::string>(),
            (*config_map)["metadata"]["name"].as<std::string>());

  const auto* service = Find(objects, "Service", "detr-server");
  const auto* headless = Find(objects, "Service", "detr-server-headless");
  ASSERT_TRUE(service && headless);
  std::set<std::string> ports;
  for (const auto& port : (*service)["spec"]["ports"]) ports.insert(port["name"].as<std::string>());
  EXPECT_TRUE(ports.count("grpc") && ports.count("metrics"));
  EXPECT_EQ((*headless)["spec"]["clusterIP"].as<std::string>(), "None");
  EXPECT_EQ((*deployment)["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"].as<std::string>(),
            "9464");
}

TEST_F(KubernetesTest, AbOverlayRunsAStickyExperimentOnThreeReplicas) {
  const auto objects = Render("deploy/k8s/overlays/ab-experiment");
  const auto* deployment = Find(objects, "Deployment");
  ASSERT_NE(deployment, nullptr);
  EXPECT_FALSE((*deployment)["spec"]["replicas"]) << "the HPA owns the replica count";
  const auto* hpa = Find(objects, "HorizontalPodAutoscaler");
  ASSERT_NE(hpa, nullptr);
  EXPECT_EQ((*hpa)["spec"]["minReplicas"].as<int>(), 3);
  const auto* config_map = Find(objects, "ConfigMap");
  ASSERT_NE(config_map, nullptr);
  const auto config =
      ServerConfig::FromText(InSourceTree((*config_map)["data"]["detr-server.yaml"].as<std::string>()), "overlay", ".");
  const auto* experiment = config.FindExperiment(config.default_route);
  ASSERT_NE(experiment, nullptr);
  EXPECT_EQ(experiment->kind, ExperimentKind::kSticky);
}

// The pods serve what `make serve` and the README offer: every model of the
// built-in configuration, the same (architecture, weights, preprocessing,
// batching), and every experiment with the same arms. A pod that lacked
// optimization-encoder would answer 404 where the README sends users.
TEST_F(KubernetesTest, ConfigsServeTheModelsAndExperimentsOfTheBuiltInConfig) {
  const auto shipped = ServerConfig::FromFile(kSource + "/deploy/detr-server.yaml");
  ASSERT_FALSE(shipped.experiments.empty());
  for (const char* dir : {"deploy/k8s/base", "deploy/k8s/overlays/ab-experiment", "deploy/k8s/overlays/tls",
                          "deploy/k8s/overlays/prometheus-operator"}) {
    const auto objects = Render(dir);
    const auto config_map = std::find_if(objects.begin(), objects.end(), [](const YAML::Node& object) {
      return object["kind"].as<std::string>() == "ConfigMap" && object["data"]["detr-server.yaml"];
    });
    ASSERT_NE(config_map, objects.end()) << dir;
    const auto pods =
        ServerConfig::FromText(InSourceTree((*config_map)["data"]["detr-server.yaml"].as<std::string>()), dir, ".");
    ASSERT_EQ(pods.models.size(), shipped.models.size()) << dir;
    for (const auto& model : shipped.models) {
      const auto it = std::find_if(pods.models.begin(), pods.models.end(),
                                   [&](const ModelEntry& m) { return m.name == model.name; });
      ASSERT_NE(it, pods.models.end()) << dir << ": no model " << model.name;
      EXPECT_TRUE(it->SameModelAs(model)) << dir << ": model " << model.name << " differs from the built-in one";
    }
    for (const auto& experiment : shipped.experiments) {
      const auto* pod_experiment = pods.FindExperiment(experiment.name);
      ASSERT_NE(pod_experiment, nullptr) << dir << ": no experiment " << experiment.name;
      EXPECT_EQ(pod_experiment->kind, experiment.kind) << dir << ": " << experiment.name;
      EXPECT_EQ(pod_experiment->primary, experiment.primary) << dir << ": " << experiment.name;
      ASSERT_EQ(pod_experiment->arms.size(), experiment.arms.size()) << dir << ": " << experiment.name;
      for (std::size_t i = 0; i < experiment.arms.size(); ++i) {
        EXPECT_EQ(pod_experiment->arms[i].model, experiment.arms[i].model) << dir << ": " << experiment.name;
        EXPECT_EQ(pod_experiment->arms[i].weight, experiment.arms[i].weight) << dir << ": " << experiment.name;
      }
    }
  }
}

// The large-task overlay serves the models of deploy/detr-server-large.yaml,
// from the image, preprocessed the same way.
TEST_F(KubernetesTest, LargeTaskOverlayServesTheLargePairOfTheImage) {
  const auto objects = Render("deploy/k8s/overlays/large-task");
  const auto* config_map = Find(objects, "ConfigMap");
  ASSERT_NE(config_map, nullptr);
  const auto pods =
      ServerConfig::FromText(InSourceTree((*config_map)["data"]["detr-server.yaml"].as<std::string>()), "overlay", ".");
  const auto shipped = ServerConfig::FromFile(kSource + "/deploy/detr-server-large.yaml");
  ASSERT_EQ(pods.models.size(), shipped.models.size());
  for (std::size_t i = 0; i < pods.models.size(); ++i) {
    const auto& pod_model = pods.models[i];
    const auto& model = shipped.models[i];
    EXPECT_EQ(pod_model.name, model.name);
    EXPECT_EQ(std::filesystem::path(pod_model.weights).filename(), std::filesystem::path(model.weights).filename());
    EXPECT_TRUE(std::filesystem::exists(pod_model.weights)) << pod_model.weights;
    EXPECT_EQ(pod_model.config.num_queries, model.config.num_queries) << model.name;
    EXPECT_EQ(pod_model.preprocessing.shortest_edge, model.preprocessing.shortest_edge) << model.name;
    EXPECT_EQ(pod_model.preprocessing.longest_edge, model.preprocessing.longest_edge) << model.name;
  }
  EXPECT_NE(pods.FindExperiment(pods.DefaultRoute()), nullptr);
}

// A Kubernetes memory quantity ("2Gi", "3584Mi") in bytes.
std::uint64_t Quantity(const std::string& text) {
  const auto digits = text.find_first_not_of("0123456789");
  const std::uint64_t number = std::stoull(text.substr(0, digits));
  const std::string unit = digits == std::string::npos ? "" : text.substr(digits);
  const std::map<std::string, std::uint64_t> units = {
      {"", 1},     {"Ki", 1ull << 10}, {"Mi", 1ull << 20}, {"Gi", 1ull << 30},
      {"K", 1000}, {"M", 1000000},     {"G", 1000000000}};
  EXPECT_TRUE(units.count(unit)) << text;
  return number * (units.count(unit) ? units.at(unit) : 0);
}

// Sized by measurement (issue 35): every deployment's memory request and limit
// are those of a passed run of `make bench-memory-limit` in
// results/memory_limit.jsonl (its server config under that limit, 4 clients
// of the real-traffic mix, no failure, RSS under the limit). Changing a limit
// without running it again fails here.
TEST_F(KubernetesTest, MemoryRequestsAndLimitsAreThoseOfAPassedMeasuredRun) {
  std::vector<nlohmann::json> runs;
  std::ifstream results(kSource + "/results/memory_limit.jsonl");
  for (std::string line; std::getline(results, line);) {
    if (!line.empty()) runs.push_back(nlohmann::json::parse(line));
  }
  for (const char* dir : {"deploy/k8s/base", "deploy/k8s/overlays/large-task", "deploy/k8s/overlays/r50-ab"}) {
    const auto objects = Render(dir);
    const auto* deployment = Find(objects, "Deployment");
    ASSERT_NE(deployment, nullptr) << dir;
    const auto resources = (*deployment)["spec"]["template"]["spec"]["containers"][0]["resources"];
    const auto limit = Quantity(resources["limits"]["memory"].as<std::string>());
    const auto request = Quantity(resources["requests"]["memory"].as<std::string>());
    EXPECT_LT(request, limit) << dir;
    const bool measured = std::any_of(runs.begin(), runs.end(), [&](const nlohmann::json& run) {
      return run.at("deployment") == dir && run.at("limit_bytes") == limit && run.at("request_bytes") == request &&
             run.at("passed").get<bool>() && run.at("concurrency").get<int>() >= 4 && run.at("failures").empty() &&
             run.at("rss_peak_bytes").get<std::uint64_t>() < limit;
    });
    EXPECT_TRUE(measured) << dir << ": no passed run of make bench-memory-limit at limit " << limit << " and request "
                          << request << " in results/memory_limit.jsonl";
  }
}

// The r50-ab overlay: two DETR-R50 arms of the image's model configs, on
// canvases (so their plans are bounded and built before readiness), split
// 50/50 by its default route.
TEST_F(KubernetesTest, R50OverlayServesTwoR50ArmsOnCanvases) {
  const auto objects = Render("deploy/k8s/overlays/r50-ab");
  const auto* config_map = Find(objects, "ConfigMap");
  ASSERT_NE(config_map, nullptr);
  const auto pods =
      ServerConfig::FromText(InSourceTree((*config_map)["data"]["detr-server.yaml"].as<std::string>()), "overlay", ".");
  ASSERT_EQ(pods.models.size(), 2u);
  for (const auto& model : pods.models) {
    EXPECT_EQ(model.config.backbone, "resnet50") << model.name;
    EXPECT_EQ(model.preprocessing.shortest_edge, 800) << model.name;
    EXPECT_FALSE(model.preprocessing.InputShapes().empty()) << model.name << ": no canvases";
  }
  const auto* experiment = pods.FindExperiment(pods.DefaultRoute());
  ASSERT_NE(experiment, nullptr);
  ASSERT_EQ(experiment->arms.size(), 2u);
  EXPECT_NE(experiment->arms[0].model, experiment->arms[1].model);
}

// The Prometheus operator's component: the scrape, every alert and recording
// rule of deploy/prometheus/rules/ (the same groups that compose's
// Prometheus loads), the dashboard, and the HPA on queue depth.
TEST_F(KubernetesTest, PrometheusOperatorComponentCarriesRulesDashboardAndQueueDepthScaling) {
  const auto objects = Render("deploy/k8s/overlays/prometheus-operator");
  const auto* monitor = Find(objects, "ServiceMonitor");
  ASSERT_NE(monitor, nullptr);
  EXPECT_EQ((*monitor)["spec"]["endpoints"][0]["port"].as<std::string>(), "metrics");
  const auto* rule = Find(objects, "PrometheusRule");
  ASSERT_NE(rule, nullptr);
  std::size_t groups = 0;
  for (const auto& file : std::filesystem::directory_iterator(kSource + "/deploy/prometheus/rules")) {
    groups += YAML::LoadFile(file.path().string())["groups"].size();
  }
  EXPECT_EQ((*rule)["spec"]["groups"].size(), groups);
  const auto* dashboard = Find(objects, "ConfigMap", "detr-serve-dashboard");
  ASSERT_NE(dashboard, nullptr);
  EXPECT_EQ((*dashboard)["metadata"]["labels"]["grafana_dashboard"].as<std::string>(), "1");
  EXPECT_NE((*dashboard)["data"]["detr-serve.json"].as<std::string>().find("detr_queue_depth"), std::string::npos);
  const auto* hpa = Find(objects, "HorizontalPodAutoscaler");
  ASSERT_NE(hpa, nullptr);
  EXPECT_EQ((*hpa)["spec"]["metrics"][0]["pods"]["metric"]["name"].as<std::string>(), "detr_queue_depth");
}

// The KServe runtime: the Open Inference Protocol on the ports KServe
// expects, the config from KServe's model folder, and an InferenceService of
// its model format.
TEST_F(KubernetesTest, KserveRuntimeServesTheProtocolWhereKserveLooks) {
  const auto objects = Render("deploy/kserve");
  const auto* runtime = Find(objects, "ClusterServingRuntime");
  const auto* service = Find(objects, "InferenceService");
  ASSERT_TRUE(runtime && service);
  const auto spec = (*runtime)["spec"];
  const auto container = spec["containers"][0];
  EXPECT_EQ(container["name"].as<std::string>(), "kserve-container");
  EXPECT_NE(container["image"].as<std::string>().find('/'), std::string::npos);
  const auto args = container["args"].as<std::vector<std::string>>();
  const auto flag = [&](const std::string& name) {
    const auto at = std::find(args.begin(), args.end(), name);
    return at != args.end() && at + 1 != args.end() ? *(at + 1) : std::string();
  };
  EXPECT_EQ(flag("--config"), "/mnt/models/detr-server.yaml");
  const auto http = flag("--http-listen");
  EXPECT_EQ(http.substr(http.rfind(':') + 1), std::to_string(container["ports"][0]["containerPort"].as<int>()));
  EXPECT_EQ(container["readinessProbe"]["httpGet"]["path"].as<std::string>(), "/v2/health/ready");
  const auto protocols = spec["protocolVersions"].as<std::vector<std::string>>();
  EXPECT_NE(std::find(protocols.begin(), protocols.end(), "v2"), protocols.end());
  const auto model = (*service)["spec"]["predictor"]["model"];
  EXPECT_EQ(model["modelFormat"]["name"].as<std::string>(), spec["supportedModelFormats"][0]["name"].as<std::string>());
  EXPECT_EQ(model["runtime"].as<std::string>(), (*runtime)["metadata"]["name"].as<std::string>());
  EXPECT_EQ(model["protocolVersion"].as<std::string>(), "v2");
  // gRPC: KServe routes it to the container port named h2c, which must be
  // where the runtime's --listen puts the gRPC server.
  const auto* grpc_service = Find(objects, "InferenceService", "detr-grpc");
  ASSERT_NE(grpc_service, nullptr);
  const auto grpc_model = (*grpc_service)["spec"]["predictor"]["model"];
  EXPECT_EQ(grpc_model["protocolVersion"].as<std::string>(), "grpc-v2");
  EXPECT_EQ(grpc_model["runtime"].as<std::string>(), (*runtime)["metadata"]["name"].as<std::string>());
  ASSERT_EQ(grpc_model["ports"].size(), 1u);
  EXPECT_EQ(grpc_model["ports"][0]["name"].as<std::string>(), "h2c");
  const auto grpc_listen = flag("--listen");
  EXPECT_EQ(grpc_listen.substr(grpc_listen.rfind(':') + 1),
            std::to_string(grpc_model["ports"][0]["containerPort"].as<int>()));
  EXPECT_NE(std::find(protocols.begin(), protocols.end(), "grpc-v2"), protocols.end());
  // The repository's deploy/ is such a model folder: its config is valid there.
  EXPECT_NO_THROW(ServerConfig::FromFile(kSource + "/deploy/detr-server.yaml"));
}

// The TLS overlay: the server's flags name files of the mounted Secrets, and
// the probes (Kubernetes' gRPC probes cannot speak TLS) run detr-client's
// health check over TLS in the pod.
TEST_F(KubernetesTest, TlsOverlayMountsItsSecretsAndProbesOverTls) {
  const auto objects = Render("deploy/k8s/overlays/tls");
  const auto* deployment = Find(objects, "Deployment");
  ASSERT_NE(deployment, nullptr);
  const auto pod = (*deployment)["spec"]["template"]["spec"];
  const auto container = pod["containers"][0];
  std::map<std::string, std::string> secret_of_mount;  // mount path -> Secret name
  for (const auto& mount : container["volumeMounts"]) {
    for (const auto& volume : pod["volumes"]) {
      if (volume["name"].as<std::string>() == mount["name"].as<std::string>() && volume["secret"]) {
        secret_of_mount[mount["mountPath"].as<std::string>()] = volume["secret"]["secretName"].as<std::string>();
      }
    }
  }
  // Each file flag lies in a mounted Secret: --tls-cert and --tls-key in
  // detr-server-tls, --tokens-file in detr-server-tokens.
  const auto args = container["args"].as<std::vector<std::string>>();
  const std::map<std::string, std::string> expected = {
      {"--tls-cert", "detr-server-tls"}, {"--tls-key", "detr-server-tls"}, {"--tokens-file", "detr-server-tokens"}};
  for (const auto& [flag, secret] : expected) {
    const auto at = std::find(args.begin(), args.end(), flag);
    ASSERT_TRUE(at != args.end() && at + 1 != args.end()) << flag;
    const auto folder = std::filesystem::path(*(at + 1)).parent_path().string();
    EXPECT_EQ(secret_of_mount[folder], secret) << flag << " " << *(at + 1);
  }
  for (const char* probe : {"readinessProbe", "livenessProbe", "startupProbe"}) {
    EXPECT_FALSE(container[probe]["grpc"]) << probe << ": a gRPC probe would speak plaintext";
    const auto command = container[probe]["exec"]["command"].as<std::vector<std::string>>();
    ASSERT_FALSE(command.empty()) << probe;
    EXPECT_EQ(command.front(), "detr-client");
    EXPECT_EQ(command.back(), "health");
    const auto ca = std::find(command.begin(), command.end(), "--tls-ca");
    ASSERT_TRUE(ca != command.end() && ca + 1 != command.end()) << probe;
    EXPECT_EQ(secret_of_mount[std::filesystem::path(*(ca + 1)).parent_path().string()], "detr-server-tls");
    EXPECT_GT(container[probe]["timeoutSeconds"].as<int>(), 2) << probe << ": longer than the client's --timeout 2";
  }
  EXPECT_EQ(pod["securityContext"]["fsGroup"].as<int>(), pod["securityContext"]["runAsGroup"].as<int>());
}

}  // namespace
}  // namespace detr::service
