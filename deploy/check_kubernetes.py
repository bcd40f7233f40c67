#!/usr/bin/env python3
"""Offline checks of deploy/kubernetes (run by scripts/validate-deploy, which installs what it imports).

1. Every Kubernetes object is validated against the Kubernetes API's JSON schemas (the
   kubernetes-validate package bundles them), strictly (unknown fields are errors), for each
   version in KUBERNETES_VERSIONS. KEDA's custom resources have no schema there and are skipped.
2. KEDA's ScaledObject and TriggerAuthentication are checked against what KEDA documents
   (keda.sh/docs/2.15: reference/scaledobject-spec, scalers/aws-sqs, authentication-providers/aws):
   the fields a ScaledObject and a trigger may have, the `aws-sqs-queue` scaler's metadata keys
   and their values (strings, as the CRD's map[string]string requires), and the `aws` pod
   identity provider's fields. The HPA behaviour KEDA passes on is validated as a real
   HorizontalPodAutoscaler's.
3. The files agree with each other and with what the binaries promise: probes on /livez and
   /readyz (web: 8080, processor: 9090), the processor's grace period longer than its drain,
   its memory limit covering its job slots, the scaler's queueLength equal to the job slots,
   region and queue the same in the scaler and the ConfigMap, every ServiceAccount, ConfigMap
   and Secret referenced defined (the Secret by secret.example.yaml), and no namespace anywhere.

With `--kustomized FILE` (the output of `kubectl kustomize deploy/kubernetes`), also checks what
kustomize builds: the same schemas, every object of the listed files there, images replaced.

Prints each problem with the file and object it is in, and exits 1 if there is any.
"""

import re
import sys
from pathlib import Path

import yaml
import kubernetes_validate
from kubernetes_validate import utils as kv

KUBERNETES_VERSIONS = ["1.29.0", kubernetes_validate.utils.latest_version() + ".0"]

# --- What KEDA documents (2.13+; the aws-sqs-queue scaler page and the ScaledObject spec) ---
SCALEDOBJECT_SPEC_KEYS = {
    "scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod",
    "idleReplicaCount", "minReplicaCount", "maxReplicaCount", "fallback", "advanced", "triggers",
}
SCALE_TARGET_REF_KEYS = {"apiVersion", "kind", "name", "envSourceContainerName"}
FALLBACK_KEYS = {"failureThreshold", "replicas"}
ADVANCED_KEYS = {"restoreToOriginalReplicaCount", "horizontalPodAutoscalerConfig", "scalingModifiers"}
HPA_CONFIG_KEYS = {"name", "behavior"}
TRIGGER_KEYS = {"type", "metadata", "name", "useCachedMetrics", "authenticationRef", "metricType"}
AUTH_REF_KEYS = {"name", "kind"}
METRIC_TYPES = {"AverageValue", "Value", "Utilization"}
# The aws-sqs-queue scaler's metadata. awsRoleArn/awsAccessKeyID/... are authentication
# parameters (TriggerAuthentication), not metadata; identityOwner is deprecated since 2.13 and
# only applies to the aws-eks provider.
SQS_METADATA_KEYS = {
    "queueURL", "queueURLFromEnv", "queueLength", "activationQueueLength", "awsRegion",
    "awsEndpoint", "identityOwner", "scaleOnInFlight", "scaleOnDelayed",
}
SQS_BOOL_KEYS = {"scaleOnInFlight", "scaleOnDelayed"}
TRIGGER_AUTH_SPEC_KEYS = {
    "podIdentity", "secretTargetRef", "env", "hashiCorpVault", "azureKeyVault", "awsSecretManager",
    "gcpSecretManager", "configMapTargetRef", "boundServiceAccountToken",
}
POD_IDENTITY_KEYS = {"provider", "identityId", "identityTenantId", "identityAuthorityHost", "roleArn", "identityOwner"}
POD_IDENTITY_PROVIDERS = {"none", "azure-workload", "gcp", "aws", "aws-eks"}
SQS_URL = re.compile(r"^https://sqs\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?/(\d{12})/([A-Za-z0-9_-]{1,80}(\.fifo)?)$")
QUEUE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}(\.fifo)?$")
IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"

# --- What the binaries promise (README.md, Dockerfile) ---
WEB_PORT, PROCESSOR_PORT = 8080, 9090
PROCESSOR_OWN_MEMORY_MIB = 150  # the processor itself, besides its job slots
DRAIN_RELEASE_SECONDS = 10      # after DARKROOM_SHUTDOWN_GRACE, releasing what is left


class Problems:
    def __init__(self):
        self.items = []

    def add(self, where, message):
        self.items.append(f"{where}: {message}")


def load(directory):
    """(file name, document) for every YAML document but the kustomization."""
    docs = []
    for path in sorted(directory.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path.name, doc))
    return docs


def name_of(file, doc):
    return f"{file} {doc.get('kind', '?')}/{(doc.get('metadata') or {}).get('name', '?')}"


def quantity_mib(q):
    """A memory quantity (`2198Mi`, `2Gi`, `512M`, bytes) in MiB."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?", str(q))
    if not m:
        raise ValueError(f"not a memory quantity: {q!r}")
    factor = {None: 1, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4,
              "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}[m.group(2)]
    return float(m.group(1)) * factor / 1024**2


def darkroom_size_mib(s):
    """DARKROOM_JOB_MEMORY_LIMIT's syntax (KiB/MiB/GiB or bytes) in MiB."""
    m = re.fullmatch(r"(\d+)\s*(KiB|MiB|GiB)?", str(s).strip())
    if not m:
        raise ValueError(f"not a size: {s!r}")
    return int(m.group(1)) * {None: 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}[m.group(2)] / 1024**2


def check_schemas(docs, p):
    for file, doc in docs:
        where = name_of(file, doc)
        if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
            p.add(file, "a document without apiVersion and kind")
            continue
        if (doc.get("metadata") or {}).get("namespace"):
            p.add(where, "names a namespace; the manifests are namespace-agnostic (kubectl apply -n / kustomize namespace:)")
        if doc["apiVersion"].startswith("keda.sh/"):
            continue  # a CRD: checked by check_keda against KEDA's documentation
        for version in KUBERNETES_VERSIONS:
            try:
                kv.validate(doc, version, strict=True)
            except kv.SchemaNotFoundError:
                p.add(where, f"Kubernetes {version} has no {doc['apiVersion']} {doc['kind']}")
            except kv.ValidationError as e:
                path = ".".join(str(x) for x in e.path) or "(top)"
                p.add(where, f"Kubernetes {kv.major_minor(version)} schema: at {path}: {e.message}")


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env", []) if "name" in e}


def find(docs, kind, name=None):
    return [(f, d) for f, d in docs if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name)]


def probe(container, kind, port_name_or_number):
    pr = container.get(kind) or {}
    get = pr.get("httpGet") or {}
    return get.get("path"), get.get("port")


def port_number(container, port):
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return p.get("containerPort")
    return None


def check_darkroom(docs, p):
    configmaps = {d["metadata"]["name"]: d.get("data", {}) for _, d in find(docs, "ConfigMap")}
    secrets = {d["metadata"]["name"]: set((d.get("stringData") or {}) | (d.get("data") or {})) for _, d in find(docs, "Secret")}
    accounts = {d["metadata"]["name"]: d for _, d in find(docs, "ServiceAccount")}

    for file, doc in docs:
        if doc.get("kind") not in ("Deployment", "Job"):
            continue
        where = name_of(file, doc)
        pod = doc["spec"]["template"]["spec"]
        sa = pod.get("serviceAccountName")
        if sa not in accounts:
            p.add(where, f"serviceAccountName {sa!r} is not defined in any file")
        elif IRSA_ANNOTATION not in (accounts[sa]["metadata"].get("annotations") or {}):
            p.add(where, f"ServiceAccount {sa} has no {IRSA_ANNOTATION} annotation (its IAM role)")
        for c in pod.get("containers", []):
            for ref in c.get("envFrom", []):
                name = (ref.get("configMapRef") or {}).get("name")
                if name and name not in configmaps:
                    p.add(where, f"envFrom ConfigMap {name!r} is not defined")
            for e in c.get("env", []):
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref and (ref["name"] not in secrets or ref["key"] not in secrets[ref["name"]]):
                    p.add(where, f"env {e['name']}: Secret {ref['name']} key {ref['key']} is not in secret.example.yaml")

    web = find(docs, "Deployment", "darkroom-web")
    if not web:
        p.add("web.yaml", "no Deployment darkroom-web")
    for file, doc in web:
        c = doc["spec"]["template"]["spec"]["containers"][0]
        where = name_of(file, doc)
        if c.get("command") != ["darkroom-web"]:
            p.add(where, f"command {c.get('command')} is not [darkroom-web] (darkroom-web --init would need create permissions)")
        bind = env_of(c).get("DARKROOM_BIND", "")
        if not bind.endswith(f":{WEB_PORT}"):
            p.add(where, f"DARKROOM_BIND {bind!r} does not listen on {WEB_PORT}")
        for kind, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
            got, port = probe(c, kind, None)
            if got != path or port_number(c, port) != WEB_PORT:
                p.add(where, f"{kind} is {got!r} on port {port!r}; expected {path} on {WEB_PORT}")
        if not any(e.get("name") == "DARKROOM_COOKIE_SECRET" and (e.get("valueFrom") or {}).get("secretKeyRef") for e in c.get("env", [])):
            p.add(where, "DARKROOM_COOKIE_SECRET must come from a Secret (the web app refuses to start on aws without it)")

    slots = None
    proc = find(docs, "Deployment", "darkroom-processor")
    if not proc:
        p.add("processor.yaml", "no Deployment darkroom-processor")
    for file, doc in proc:
        where = name_of(file, doc)
        pod = doc["spec"]["template"]["spec"]
        c = pod["containers"][0]
        env = env_of(c)
        if c.get("command") != ["darkroom-processor"]:
            p.add(where, f"command {c.get('command')} is not [darkroom-processor]")
        bind = env.get("DARKROOM_PROCESSOR_BIND", "")
        if not bind.endswith(f":{PROCESSOR_PORT}"):
            p.add(where, f"DARKROOM_PROCESSOR_BIND {bind!r} is not the probe port {PROCESSOR_PORT}")
        for kind, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
            got, port = probe(c, kind, None)
            if got != path or port_number(c, port) != PROCESSOR_PORT:
                p.add(where, f"{kind} is {got!r} on port {port!r}; expected {path} on {PROCESSOR_PORT}")
        grace = int(env.get("DARKROOM_SHUTDOWN_GRACE", "30"))
        period = pod.get("terminationGracePeriodSeconds", 30)
        if period <= grace + DRAIN_RELEASE_SECONDS:
            p.add(where, f"terminationGracePeriodSeconds {period} is not longer than the drain "
                         f"(DARKROOM_SHUTDOWN_GRACE {grace} s + {DRAIN_RELEASE_SECONDS} s releasing): a scale-in would SIGKILL jobs")
        try:
            slots = int(env["DARKROOM_CONCURRENCY"])
            job_mib = darkroom_size_mib(env["DARKROOM_JOB_MEMORY_LIMIT"])
        except (KeyError, ValueError) as e:
            p.add(where, f"DARKROOM_CONCURRENCY and DARKROOM_JOB_MEMORY_LIMIT must both be set, as numbers ({e})")
            continue
        if job_mib == 0:
            p.add(where, "DARKROOM_JOB_MEMORY_LIMIT 0 (no cap) leaves the container's limit as the only cap: one job over it OOM-kills every job")
        limits = (c.get("resources") or {}).get("limits") or {}
        requests = (c.get("resources") or {}).get("requests") or {}
        budget = slots * job_mib + PROCESSOR_OWN_MEMORY_MIB
        if "memory" not in limits:
            p.add(where, "no memory limit")
        else:
            limit = quantity_mib(limits["memory"])
            if limit < budget:
                p.add(where, f"memory limit {limits['memory']} ({limit:.0f} MiB) is below {slots} slots × "
                             f"{env['DARKROOM_JOB_MEMORY_LIMIT']} + {PROCESSOR_OWN_MEMORY_MIB} MiB = {budget:.0f} MiB")
            elif limit > budget * 1.25:
                p.add(where, f"memory limit {limits['memory']} ({limit:.0f} MiB) is far above the job slots' budget "
                             f"{budget:.0f} MiB: raise DARKROOM_JOB_MEMORY_LIMIT or DARKROOM_CONCURRENCY to use it")
            if "memory" in requests and quantity_mib(requests["memory"]) < limit:
                p.add(where, f"memory request {requests['memory']} is below the limit {limits['memory']}: "
                             "a busy node may OOM-kill a processor that stays within its budget")

    init = find(docs, "Job", "darkroom-init")
    if not init:
        p.add("init-job.yaml", "no Job darkroom-init")
    for file, doc in init:
        c = doc["spec"]["template"]["spec"]["containers"][0]
        if c.get("command") != ["darkroom-ctl", "init"]:
            p.add(name_of(file, doc), f"command {c.get('command')} is not [darkroom-ctl, init]")
    return slots, configmaps


def is_int_string(v, minimum):
    return isinstance(v, str) and re.fullmatch(r"\d+", v) is not None and int(v) >= minimum


def check_keda(docs, p, slots, configmaps):
    auths = {d["metadata"]["name"]: (f, d) for f, d in find(docs, "TriggerAuthentication")}
    deployments = {d["metadata"]["name"]: d for _, d in find(docs, "Deployment")}
    accounts = {d["metadata"]["name"]: d for _, d in find(docs, "ServiceAccount")}
    config = {}
    for data in configmaps.values():
        config.update(data)

    for file, doc in auths.values():
        where = name_of(file, doc)
        if doc.get("apiVersion") != "keda.sh/v1alpha1":
            p.add(where, f"apiVersion {doc.get('apiVersion')!r} is not keda.sh/v1alpha1")
        spec = doc.get("spec") or {}
        for k in set(spec) - TRIGGER_AUTH_SPEC_KEYS:
            p.add(where, f"spec.{k} is not a TriggerAuthentication field")
        pi = spec.get("podIdentity")
        if pi is None:
            continue
        for k in set(pi) - POD_IDENTITY_KEYS:
            p.add(where, f"spec.podIdentity.{k} is not a podIdentity field")
        provider = pi.get("provider")
        if provider not in POD_IDENTITY_PROVIDERS:
            p.add(where, f"podIdentity.provider {provider!r} is not one of {sorted(POD_IDENTITY_PROVIDERS)}")
        if provider == "aws":
            if "roleArn" in pi and "identityOwner" in pi:
                p.add(where, "podIdentity.roleArn and podIdentity.identityOwner are mutually exclusive")
            if pi.get("identityOwner", "keda") not in ("keda", "workload"):
                p.add(where, f"podIdentity.identityOwner {pi['identityOwner']!r} is not keda or workload")

    objects = find(docs, "ScaledObject")
    if not objects:
        p.add("keda.yaml", "no ScaledObject")
    for file, doc in objects:
        where = name_of(file, doc)
        if doc.get("apiVersion") != "keda.sh/v1alpha1":
            p.add(where, f"apiVersion {doc.get('apiVersion')!r} is not keda.sh/v1alpha1")
        spec = doc.get("spec") or {}
        for k in set(spec) - SCALEDOBJECT_SPEC_KEYS:
            p.add(where, f"spec.{k} is not a ScaledObject field (documented: {sorted(SCALEDOBJECT_SPEC_KEYS)})")
        ref = spec.get("scaleTargetRef") or {}
        for k in set(ref) - SCALE_TARGET_REF_KEYS:
            p.add(where, f"spec.scaleTargetRef.{k} is not a scaleTargetRef field")
        target = deployments.get(ref.get("name"))
        if ref.get("kind", "Deployment") != "Deployment" or target is None:
            p.add(where, f"spec.scaleTargetRef names {ref.get('kind', 'Deployment')} {ref.get('name')!r}, not a Deployment defined here")
        for k in ("pollingInterval", "cooldownPeriod", "initialCooldownPeriod", "minReplicaCount", "maxReplicaCount", "idleReplicaCount"):
            if k in spec and not (isinstance(spec[k], int) and spec[k] >= 0):
                p.add(where, f"spec.{k} {spec[k]!r} is not a non-negative integer")
        lo, hi = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
        if isinstance(lo, int) and isinstance(hi, int) and lo > hi:
            p.add(where, f"minReplicaCount {lo} > maxReplicaCount {hi}")
        if "minReplicaCount" not in spec or "maxReplicaCount" not in spec:
            p.add(where, "set minReplicaCount and maxReplicaCount explicitly")
        if "idleReplicaCount" in spec and spec["idleReplicaCount"] >= lo:
            p.add(where, "idleReplicaCount must be less than minReplicaCount")
        fb = spec.get("fallback")
        if fb is not None:
            for k in set(fb) - FALLBACK_KEYS:
                p.add(where, f"spec.fallback.{k} is not a fallback field")
            for k in FALLBACK_KEYS - set(fb):
                p.add(where, f"spec.fallback needs {k}")
        adv = spec.get("advanced") or {}
        for k in set(adv) - ADVANCED_KEYS:
            p.add(where, f"spec.advanced.{k} is not an advanced field")
        hpa = adv.get("horizontalPodAutoscalerConfig") or {}
        for k in set(hpa) - HPA_CONFIG_KEYS:
            p.add(where, f"spec.advanced.horizontalPodAutoscalerConfig.{k} is not a field")
        if "behavior" in hpa:
            # KEDA hands this to the HPA it creates: validate it as a real HPA's.
            fake = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                    "metadata": {"name": "keda-hpa-check"},
                    "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"},
                             "minReplicas": 1, "maxReplicas": 2, "behavior": hpa["behavior"]}}
            for version in KUBERNETES_VERSIONS:
                try:
                    kv.validate(fake, version, strict=True)
                except kv.ValidationError as e:
                    path = ".".join(str(x) for x in e.path)
                    p.add(where, f"advanced.horizontalPodAutoscalerConfig.behavior as an HPA's ({kv.major_minor(version)}): at {path}: {e.message}")
        triggers = spec.get("triggers")
        if not isinstance(triggers, list) or not triggers:
            p.add(where, "spec.triggers must be a non-empty list")
            continue
        sqs = [t for t in triggers if t.get("type") == "aws-sqs-queue"]
        if not sqs:
            p.add(where, "no aws-sqs-queue trigger")
        for i, t in enumerate(triggers):
            tw = f"{where} triggers[{i}]"
            for k in set(t) - TRIGGER_KEYS:
                p.add(tw, f"{k} is not a trigger field (documented: {sorted(TRIGGER_KEYS)})")
            if "metricType" in t and t["metricType"] not in METRIC_TYPES:
                p.add(tw, f"metricType {t['metricType']!r} is not one of {sorted(METRIC_TYPES)}")
            ar = t.get("authenticationRef")
            if ar is not None:
                for k in set(ar) - AUTH_REF_KEYS:
                    p.add(tw, f"authenticationRef.{k} is not a field")
                if ar.get("kind", "TriggerAuthentication") == "TriggerAuthentication" and ar.get("name") not in auths:
                    p.add(tw, f"authenticationRef names TriggerAuthentication {ar.get('name')!r}, not defined here")
            if t.get("type") != "aws-sqs-queue":
                continue
            md = t.get("metadata")
            if not isinstance(md, dict):
                p.add(tw, "metadata must be a mapping")
                continue
            for k in set(md) - SQS_METADATA_KEYS:
                p.add(tw, f"metadata.{k} is not an aws-sqs-queue parameter (documented: {sorted(SQS_METADATA_KEYS)})")
            for k, v in md.items():
                if not isinstance(v, str):
                    p.add(tw, f"metadata.{k} is {type(v).__name__} {v!r}: trigger metadata values must be strings (quote it)")
            if "queueURL" not in md and "queueURLFromEnv" not in md:
                p.add(tw, "metadata needs queueURL or queueURLFromEnv")
            if "awsRegion" not in md:
                p.add(tw, "metadata.awsRegion is required")
            if isinstance(md.get("queueLength"), str) and not is_int_string(md["queueLength"], 1):
                p.add(tw, f"metadata.queueLength {md['queueLength']!r} is not a positive integer")
            if isinstance(md.get("activationQueueLength"), str) and not is_int_string(md["activationQueueLength"], 0):
                p.add(tw, f"metadata.activationQueueLength {md['activationQueueLength']!r} is not a non-negative integer")
            for k in SQS_BOOL_KEYS & set(md):
                if md[k] not in ("true", "false"):
                    p.add(tw, f"metadata.{k} {md[k]!r} is not \"true\" or \"false\"")
            if "identityOwner" in md and md["identityOwner"] not in ("pod", "operator"):
                p.add(tw, f"metadata.identityOwner {md['identityOwner']!r} is not pod or operator")
            if "awsEndpoint" in md and md["awsEndpoint"] and not md["awsEndpoint"].startswith(("http://", "https://")):
                p.add(tw, f"metadata.awsEndpoint {md['awsEndpoint']!r} is not a URL")
            # Consistency with the processor and the ConfigMap.
            if slots is not None and str(md.get("queueLength")) != str(slots):
                p.add(tw, f"metadata.queueLength {md.get('queueLength')!r} is not the processor's job slots "
                          f"(DARKROOM_CONCURRENCY {slots}): one replica should hold queueLength messages")
            url = md.get("queueURL", "")
            m = SQS_URL.match(url)
            if m:
                if m.group(1) != md.get("awsRegion"):
                    p.add(tw, f"queueURL's region {m.group(1)} is not awsRegion {md.get('awsRegion')!r}")
                queue = m.group(4)
            elif url and QUEUE_NAME.match(url):
                queue = url
            else:
                queue = None
                if url:
                    p.add(tw, f"queueURL {url!r} is neither https://sqs.<region>.amazonaws.com/<account>/<queue> nor a queue name")
            job_queue = config.get("DARKROOM_JOB_QUEUE", "darkroom-jobs")
            job_queue = job_queue.rstrip("/").rsplit("/", 1)[-1]
            if queue is not None and queue != job_queue:
                p.add(tw, f"scales on queue {queue!r} but the processors read {job_queue!r} (DARKROOM_JOB_QUEUE)")
            if "AWS_REGION" in config and md.get("awsRegion") != config["AWS_REGION"]:
                p.add(tw, f"awsRegion {md.get('awsRegion')!r} is not the ConfigMap's AWS_REGION {config['AWS_REGION']!r}")
            # Who reads the queue depth: with the aws provider and identityOwner workload,
            # KEDA assumes the scale target's IRSA role, so that ServiceAccount needs one.
            if ar and ar.get("name") in auths:
                pi = (auths[ar["name"]][1].get("spec") or {}).get("podIdentity") or {}
                if pi.get("provider") == "aws" and pi.get("identityOwner") == "workload" and target is not None:
                    sa = target["spec"]["template"]["spec"].get("serviceAccountName")
                    if IRSA_ANNOTATION not in ((accounts.get(sa) or {}).get("metadata", {}).get("annotations") or {}):
                        p.add(tw, f"identityOwner workload, but the target's ServiceAccount {sa!r} has no {IRSA_ANNOTATION}")
                if pi.get("provider") == "aws" and "identityOwner" in md:
                    p.add(tw, "metadata.identityOwner only applies to the deprecated aws-eks provider; with provider aws use podIdentity.identityOwner")


def check_kustomization(directory, docs, p):
    path = directory / "kustomization.yaml"
    if not path.exists():
        return
    k = yaml.safe_load(path.read_text())
    for res in k.get("resources", []):
        if not (directory / res).exists():
            p.add("kustomization.yaml", f"resource {res} does not exist")
    listed = set(k.get("resources", []))
    for f in {f for f, _ in docs} - listed - {"secret.example.yaml"}:
        p.add("kustomization.yaml", f"{f} is not listed in resources")
    if "secret.example.yaml" in listed:
        p.add("kustomization.yaml", "secret.example.yaml must not be applied (placeholders only)")
    images = {i["name"] for i in k.get("images", [])}
    for file, doc in docs:
        if doc.get("kind") in ("Deployment", "Job"):
            for c in doc["spec"]["template"]["spec"]["containers"]:
                if c.get("image") not in images:
                    p.add(name_of(file, doc), f"image {c.get('image')!r} is not set by kustomization.yaml's images")


def check_kustomized(path, docs, p):
    """What `kubectl kustomize` built from the directory."""
    try:
        built = [d for d in yaml.safe_load_all(Path(path).read_text()) if d is not None]
    except yaml.YAMLError as e:
        p.add(path, f"cannot parse kustomize's output: {e}")
        return
    check_schemas([("(kustomized)", d) for d in built], p)
    have = {(d.get("kind"), d["metadata"]["name"]) for d in built}
    for file, doc in docs:
        if file != "secret.example.yaml" and (doc.get("kind"), doc["metadata"]["name"]) not in have:
            p.add("(kustomized)", f"{name_of(file, doc)} is missing from kustomize's output")
    for doc in built:
        if doc.get("kind") in ("Deployment", "Job"):
            for c in doc["spec"]["template"]["spec"]["containers"]:
                if ":" not in c.get("image", "") or "/" not in c.get("image", ""):
                    p.add(f"(kustomized) {doc['kind']}/{doc['metadata']['name']}",
                          f"image {c.get('image')!r} was not replaced by kustomization.yaml's images")


def check_all(docs, p, where):
    check_schemas(docs, p)
    try:
        slots, configmaps = check_darkroom(docs, p)
        check_keda(docs, p, slots, configmaps)
    except (KeyError, TypeError, AttributeError, IndexError) as e:
        p.add(where, f"a required field is missing or has the wrong type ({type(e).__name__}: {e}); fix the schema errors above first")


# Known-broken variants of the manifests, each with a piece of the message it must produce: run
# first, so a checker that silently stopped checking (a schema package that accepts anything,
# a renamed field) fails the build instead of passing everything.
def _set(path, value):
    def mutate(docs):
        file, kind, name = path[0]
        doc = next(d for f, d in docs if f == file and d["kind"] == kind and d["metadata"]["name"] == name)
        for key in path[1:-1]:
            doc = doc[key]
        doc[path[-1]] = value
    return mutate


PROC = ("processor.yaml", "Deployment", "darkroom-processor")
SO = ("keda.yaml", "ScaledObject", "darkroom-processor")
BROKEN = [
    ("unknown container field", _set([PROC, "spec", "template", "spec", "containers", 0, "imagePullPolicyy"], "Always"),
     "'imagePullPolicyy' was unexpected"),
    ("wrong type", _set([PROC, "spec", "replicas"], "one"), "is not of type 'integer'"),
    ("grace shorter than the drain", _set([PROC, "spec", "template", "spec", "terminationGracePeriodSeconds"], 35),
     "is not longer than the drain"),
    ("memory under the slots' budget", _set([PROC, "spec", "template", "spec", "containers", 0, "resources", "limits", "memory"], "1Gi"),
     "is below 2 slots"),
    ("undocumented scaler key", _set([SO, "spec", "triggers", 0, "metadata", "queueName"], "darkroom-jobs"),
     "metadata.queueName is not an aws-sqs-queue parameter"),
    ("unquoted metadata value", _set([SO, "spec", "triggers", 0, "metadata", "queueLength"], 2), "must be strings"),
    ("queue length not the slots", _set([SO, "spec", "triggers", 0, "metadata", "queueLength"], "5"), "is not the processor's job slots"),
    ("undocumented ScaledObject field", _set([SO, "spec", "cooldownPeriods"], 300), "spec.cooldownPeriods is not a ScaledObject field"),
    ("invalid HPA behaviour", _set([SO, "spec", "advanced", "horizontalPodAutoscalerConfig", "behavior", "scaleDown", "selectPolicy"], 7),
     "horizontalPodAutoscalerConfig.behavior"),
]


def self_test(original):
    import copy
    missed = []
    for label, mutate, expected in BROKEN:
        docs = copy.deepcopy(original)
        mutate(docs)
        p = Problems()
        check_all(docs, p, label)
        if not any(expected in item for item in p.items):
            missed.append(f"{label}: expected a problem containing {expected!r}, got {p.items or 'none'}")
    if missed:
        print("FAIL: the checker no longer catches known-broken manifests:")
        for m in missed:
            print(f"  - {m}")
        return False
    print(f"ok: self-test, {len(BROKEN)} known-broken variants of the manifests are all caught")
    return True


def main():
    args = sys.argv[1:]
    kustomized = None
    if "--kustomized" in args:
        i = args.index("--kustomized")
        kustomized = args[i + 1]
        del args[i:i + 2]
    directory = Path(args[0] if args else "deploy/kubernetes")
    p = Problems()
    try:
        docs = load(directory)
    except yaml.YAMLError as e:
        print(f"FAIL: cannot parse YAML in {directory}: {e}")
        return 1
    try:
        if not self_test(docs):
            return 1
    except (StopIteration, KeyError, IndexError, TypeError) as e:
        print(f"FAIL: the self-test cannot find what it breaks ({type(e).__name__}: {e}); "
              "update BROKEN in deploy/check_kubernetes.py along with the manifests")
        return 1
    check_all(docs, p, str(directory))
    check_kustomization(directory, docs, p)
    if kustomized:
        check_kustomized(kustomized, docs, p)
    kinds = sorted({d.get("kind", "?") for _, d in docs})
    if p.items:
        print(f"FAIL: {len(p.items)} problem(s) in {directory}:")
        for item in p.items:
            print(f"  - {item}")
        return 1
    print(f"ok: {len(docs)} objects in {directory} ({', '.join(kinds)}): Kubernetes schemas "
          f"{', '.join(kv.major_minor(v) for v in KUBERNETES_VERSIONS)} (strict), KEDA aws-sqs-queue fields, consistency"
          + (", kustomize build" if kustomized else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
