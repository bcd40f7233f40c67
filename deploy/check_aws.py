#!/usr/bin/env python3
"""Offline checks of deploy/aws/darkroom.yaml that cfn-lint cannot make (run by scripts/validate-deploy).

1. Least privilege: every Allow statement of the web, processor and init access policies is
   compared, action by action and resource by resource, with what that process calls (the table
   below, read from the code: S3 keys in core/src/keys.rs, S3 calls in core/src/store/s3.rs, SQS
   calls in core/src/queue/sqs.rs, their callers in web/src and processor/src, darkroom-ctl
   init in core/src/config.rs). Anything more or less is reported. No Allow may use a wildcard
   action or resource "*".
2. The queues and the bucket are what the issue asks: redrive to the dead-letter queue with
   MaxReceiveCount, 14-day dead-letter retention, server-side encryption (SSE-SQS or KMS),
   bucket encryption, public access blocked, TLS-only policy, lifecycle on originals/ and outputs/.
3. Every DARKROOM_* variable the recipes set (deploy/aws and deploy/kubernetes) is one the
   binaries read (an `env = "…"` in their source), so a typo is not silently ignored.

Prints each problem and exits 1 if there is any.
"""

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "deploy" / "aws" / "darkroom.yaml"

# What each process calls, as (IAM action, resource) pairs. Resources are the template's logical
# ids, a bucket key pattern as "Bucket/<prefix>*", or KmsKeyArn (only when a key is given).
# The web app replicas' inbox queues (DARKROOM_REPLICA_QUEUE_PREFIX=<stack>-replica-).
REPLICA_INBOXES = "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:${AWS::StackName}-replica-*"
KMS = {("kms:Decrypt", "KmsKeyArn"), ("kms:GenerateDataKey", "KmsKeyArn")}
EXPECTED = {
    "WebAccessPolicy": {
        # Lists owners/, logos/, outputs/, jobs/; and a missing key must be 404, not 403.
        ("s3:ListBucket", "Bucket"),
        # GET/HEAD: originals and outputs (downloads, zip), job records, logos (HEAD before a
        # job that uses one), revoked ops sessions, Idempotency-Key records.
        # The replicas' registry (system/replicas/): read, written, reaped (docs/scaling.md).
        # The retention sweeper's lease (system/retention/): read and conditionally written.
        *{("s3:GetObject", f"Bucket/{p}*")
          for p in ("originals/", "outputs/", "jobs/", "logos/", "system/ops-revoked/", "system/replicas/",
                    "system/retention/", "idempotency/")},
        # PUT: uploads, job records (conditional writes are PutObject too), the owner index,
        # logos, ops sign-outs, the replica registry entry, cancel markers, Idempotency-Key records.
        *{("s3:PutObject", f"Bucket/{p}*")
          for p in ("originals/", "jobs/", "owners/", "logos/", "system/ops-revoked/", "system/replicas/",
                    "system/retention/", "cancelled/", "idempotency/")},
        # DELETE /api/jobs/{id} and the retention sweeper: original, outputs, record, index entry,
        # cancel marker; DELETE /api/logos/{id} and unused logos past the retention; a stopped
        # replica's entry; a released or expired Idempotency-Key record.
        *{("s3:DeleteObject", f"Bucket/{p}*")
          for p in ("originals/", "outputs/", "jobs/", "owners/", "logos/", "system/replicas/", "cancelled/",
                    "idempotency/")},
        # Each replica's inbox for change notices (<stack>-replica-*): created at start, sent to
        # by the others, received from, deleted at a clean stop or reaped after the grace period.
        *{(a, "ReplicaInboxes") for a in ("sqs:CreateQueue", "sqs:DeleteQueue", "sqs:SetQueueAttributes",
                                          "sqs:GetQueueUrl", "sqs:SendMessage", "sqs:ReceiveMessage",
                                          "sqs:DeleteMessage")},
        # Jobs: send (uploads, retries, redrive from the dead-letter queue), depth (/healthz, ops, metrics).
        ("sqs:SendMessage", "JobQueue"), ("sqs:GetQueueAttributes", "JobQueue"), ("sqs:GetQueueUrl", "JobQueue"),
        # Replies: the consumer receives and deletes; ops shows the depth.
        ("sqs:ReceiveMessage", "ReplyQueue"), ("sqs:DeleteMessage", "ReplyQueue"),
        ("sqs:GetQueueAttributes", "ReplyQueue"), ("sqs:GetQueueUrl", "ReplyQueue"),
        # Dead letters: watched (received, hidden again), redriven (received, deleted), depth.
        ("sqs:ReceiveMessage", "DeadLetterQueue"), ("sqs:DeleteMessage", "DeadLetterQueue"),
        ("sqs:ChangeMessageVisibility", "DeadLetterQueue"), ("sqs:GetQueueAttributes", "DeadLetterQueue"),
        ("sqs:GetQueueUrl", "DeadLetterQueue"),
        *KMS,
    },
    "ProcessorAccessPolicy": {
        ("s3:ListBucket", "Bucket"),  # 404 for outputs/<id>/manifest.json before a first attempt
        ("s3:GetObject", "Bucket/originals/*"), ("s3:GetObject", "Bucket/logos/*"), ("s3:GetObject", "Bucket/outputs/*"),
        ("s3:GetObject", "Bucket/cancelled/*"),  # HEAD of a job's cancel marker before rendering
        ("s3:PutObject", "Bucket/outputs/*"),
        ("sqs:ReceiveMessage", "JobQueue"), ("sqs:ChangeMessageVisibility", "JobQueue"), ("sqs:DeleteMessage", "JobQueue"),
        ("sqs:GetQueueUrl", "JobQueue"), ("sqs:GetQueueAttributes", "JobQueue"),
        ("sqs:SendMessage", "ReplyQueue"), ("sqs:GetQueueUrl", "ReplyQueue"),
        ("sqs:GetQueueUrl", "DeadLetterQueue"),  # connects to all three queues by name
        *KMS,
    },
    "InitAccessPolicy": {
        ("s3:CreateBucket", "Bucket"), ("s3:ListBucket", "Bucket"),
        *{(a, q) for a in ("sqs:CreateQueue", "sqs:GetQueueUrl", "sqs:GetQueueAttributes", "sqs:SetQueueAttributes")
          for q in ("JobQueue", "ReplyQueue", "DeadLetterQueue")},
        *KMS,
    },
}
# Variables the recipes may set before the binaries read them: issue 13 promises them and they
# are being built. Remove a name once the source has it.
PENDING_ENV: set[str] = set()


class CfnLoader(yaml.SafeLoader):
    pass


def _tag(loader, suffix, node):
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: _tag(loader, suffix, node))


def resource_of(value):
    """A statement's resource as a logical id or "Bucket/<prefix>*"."""
    if isinstance(value, dict):
        if "Fn::GetAtt" in value:
            return value["Fn::GetAtt"][0]
        if "Ref" in value:
            return value["Ref"]
        if "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
            m = re.fullmatch(r"\$\{(\w+)\.Arn\}(/.*)?", value["Fn::Sub"])
            if m:
                return m.group(1) + (m.group(2) or "")
            if value["Fn::Sub"] == REPLICA_INBOXES:
                return "ReplicaInboxes"
    if value == "*":
        return "*"
    return repr(value)


def statements(doc):
    for st in doc.get("Statement", []):
        if isinstance(st, dict) and "Fn::If" in st:
            st = st["Fn::If"][1]  # the condition's true branch (KMS when a key is given)
        if isinstance(st, dict) and "Effect" in st:
            yield st


def as_list(x):
    return x if isinstance(x, list) else [x]


def check(template, problems):
    """Everything but the variable names (those read files); `template` is the parsed YAML."""
    resources = template["Resources"]

    # 1. Least privilege.
    for name, expected in EXPECTED.items():
        policy = resources.get(name)
        if policy is None:
            problems.append(f"{name}: missing")
            continue
        granted = set()
        for st in statements(policy["Properties"]["PolicyDocument"]):
            if st["Effect"] != "Allow":
                continue
            for action in as_list(st["Action"]):
                for res in as_list(st["Resource"]):
                    granted.add((action, resource_of(res)))
        for action, res in sorted(granted):
            if "*" in action or res == "*":
                problems.append(f"{name}: wildcard grant {action} on {res}")
        for action, res in sorted(granted - expected):
            problems.append(f"{name}: grants {action} on {res}, which that process never calls (least privilege)")
        for action, res in sorted(expected - granted):
            problems.append(f"{name}: lacks {action} on {res}, which that process calls")
    for logical, res in resources.items():
        if res["Type"] == "AWS::IAM::Role":
            for pol in res["Properties"].get("Policies", []):
                for st in statements(pol["PolicyDocument"]):
                    if st["Effect"] == "Allow" and any(r == "*" for r in as_list(st["Resource"])):
                        problems.append(f"{logical}: inline policy {pol['PolicyName']} allows on resource *")

    # 2. Bucket and queues.
    props = lambda n: resources[n]["Properties"]
    jobs = props("JobQueue")
    redrive = jobs.get("RedrivePolicy", {})
    if redrive.get("deadLetterTargetArn") != {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}:
        problems.append("JobQueue: RedrivePolicy does not target DeadLetterQueue")
    if redrive.get("maxReceiveCount") != {"Ref": "MaxReceiveCount"}:
        problems.append("JobQueue: maxReceiveCount is not the MaxReceiveCount parameter")
    if jobs.get("VisibilityTimeout") != {"Ref": "VisibilityTimeout"}:
        problems.append("JobQueue: VisibilityTimeout is not the VisibilityTimeout parameter")
    if props("DeadLetterQueue").get("MessageRetentionPeriod") != 1209600:
        problems.append("DeadLetterQueue: retention is not 14 days (1209600 s)")
    for q in ("JobQueue", "ReplyQueue", "DeadLetterQueue"):
        p = props(q)
        if "SqsManagedSseEnabled" not in p or "KmsMasterKeyId" not in p:
            problems.append(f"{q}: needs SSE-SQS by default and KmsMasterKeyId when KmsKeyArn is given")
    bucket = props("Bucket")
    if not bucket.get("BucketEncryption"):
        problems.append("Bucket: no default encryption")
    pab = bucket.get("PublicAccessBlockConfiguration", {})
    for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"):
        if pab.get(k) is not True:
            problems.append(f"Bucket: PublicAccessBlockConfiguration.{k} is not true")
    # The sweeper (DARKROOM_RETENTION = RetentionDays) deletes whole jobs; lifecycle rules are a
    # later backstop on every prefix of a job, never on logos/ or system/.
    rules = bucket.get("LifecycleConfiguration", {}).get("Rules", [])
    prefixes = {r.get("Prefix") for r in rules if r.get("ExpirationInDays") == {"Ref": "LifecycleBackstopDays"}}
    for prefix in ("originals/", "outputs/", "jobs/", "owners/", "cancelled/"):
        if prefix not in prefixes:
            problems.append(f"Bucket: no lifecycle rule expiring {prefix} after LifecycleBackstopDays")
    for r in rules:
        if str(r.get("Prefix", "")).startswith(("logos/", "system/")) or ("ExpirationInDays" in r and not r.get("Prefix")):
            problems.append(f"Bucket: lifecycle rule {r.get('Id')} would expire logos in use or the web app's own objects")
    web_env = {e["Name"]: e.get("Value") for c in props("WebTaskDefinition")["ContainerDefinitions"]
               for e in c.get("Environment", []) if "Name" in e}
    if web_env.get("DARKROOM_RETENTION") != {"Fn::Sub": "${RetentionDays}d"}:
        problems.append("WebTaskDefinition: DARKROOM_RETENTION must be ${RetentionDays}d (the sweeper)")
    tls = [st for st in statements(props("BucketPolicy")["PolicyDocument"])
           if st["Effect"] == "Deny" and st.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"]
    if not tls:
        problems.append("BucketPolicy: no TLS-only (aws:SecureTransport false) deny")
    stop = {c["Name"]: c.get("StopTimeout", 30) for c in props("ProcessorTaskDefinition")["ContainerDefinitions"]}
    if stop.get("processor", 0) <= 40:
        problems.append("ProcessorTaskDefinition: StopTimeout must exceed the drain (30 s grace + 10 s releasing)")

    # The defaults keep the memory budget: slots x per-job cap + ~150 MiB within the task and container.
    params = template["Parameters"]
    budget = params["ProcessorConcurrency"]["Default"] * params["JobMemoryLimitMiB"]["Default"] + 150
    for limit in ("ProcessorTaskMemory", "InstanceContainerMemoryMiB"):
        if budget > params[limit]["Default"]:
            problems.append(f"Parameters: default ProcessorConcurrency x JobMemoryLimitMiB + 150 = {budget} MiB "
                            f"exceeds {limit}'s default {params[limit]['Default']}")

    # Text CloudFormation cannot check: the IRSA trust policies written as JSON strings, and the
    # EC2 instances' user data (bash, and the drain script it writes).
    def substituted(text):
        return re.sub(r"\$\{(?!!)[^}]+\}", "x", text)
    for logical, res in resources.items():
        doc = res.get("Properties", {}).get("AssumeRolePolicyDocument")
        if isinstance(doc, dict) and "Fn::If" in doc:
            for branch in doc["Fn::If"][1:]:
                if isinstance(branch, dict) and isinstance(branch.get("Fn::Sub"), str):
                    try:
                        json.loads(substituted(branch["Fn::Sub"]))
                    except json.JSONDecodeError as e:
                        problems.append(f"{logical}: AssumeRolePolicyDocument is not valid JSON: {e}")
    user_data = (resources.get("ProcessorLaunchTemplate", {}).get("Properties", {})
                 .get("LaunchTemplateData", {}).get("UserData", {}).get("Fn::Base64", {}).get("Fn::Sub"))
    if not isinstance(user_data, str):
        problems.append("ProcessorLaunchTemplate: no user data script (Fn::Base64 of Fn::Sub)")
    else:
        script = substituted(user_data)
        drain = re.search(r"<<'EOF'\n(.*?)\nEOF\n", script, re.S)
        for label, text in (("user data", script), ("drain script", drain.group(1) if drain else None)):
            if text is None:
                problems.append("ProcessorLaunchTemplate: the user data writes no drain script")
                continue
            with tempfile.NamedTemporaryFile("w", suffix=".sh") as f:
                f.write(text)
                f.flush()
                r = subprocess.run(["bash", "-n", f.name], capture_output=True, text=True)
            if r.returncode != 0:
                problems.append(f"ProcessorLaunchTemplate: {label} is not valid bash: {r.stderr.strip()}")



def _policy_statement(policy, sid):
    return next(st for st in template_statements(policy) if st.get("Sid") == sid)


def template_statements(policy):
    return policy["Properties"]["PolicyDocument"]["Statement"]


# Known-broken variants of the template, each with a piece of the message it must produce (run
# first, so a check that stopped checking fails instead of passing everything).
def _grant(policy, action, resource):
    def mutate(t):
        template_statements(t["Resources"][policy]).append({"Effect": "Allow", "Action": action, "Resource": resource})
    return mutate


def _drop_sid(policy, sid):
    def mutate(t):
        sts = template_statements(t["Resources"][policy])
        sts.remove(_policy_statement(t["Resources"][policy], sid))
    return mutate


def _prop(resource, key, value):
    def mutate(t):
        t["Resources"][resource]["Properties"][key] = value
    return mutate


BROKEN = [
    ("processor deletes outputs", _grant("ProcessorAccessPolicy", "s3:DeleteObject", {"Fn::Sub": "${Bucket.Arn}/outputs/*"}),
     "grants s3:DeleteObject on Bucket/outputs/*"),
    ("web reads everything", _grant("WebAccessPolicy", "s3:GetObject", {"Fn::Sub": "${Bucket.Arn}/*"}), "grants s3:GetObject on Bucket/*"),
    ("wildcard action", _grant("InitAccessPolicy", "sqs:*", {"Fn::GetAtt": ["JobQueue", "Arn"]}), "wildcard grant sqs:*"),
    ("processor without ListBucket", _drop_sid("ProcessorAccessPolicy", "NotFoundInsteadOfAccessDenied"), "lacks s3:ListBucket on Bucket"),
    ("short dead-letter retention", _prop("DeadLetterQueue", "MessageRetentionPeriod", 345600), "retention is not 14 days"),
    ("no redrive", _prop("JobQueue", "RedrivePolicy", {}), "RedrivePolicy does not target DeadLetterQueue"),
    ("public bucket", _prop("Bucket", "PublicAccessBlockConfiguration", {"BlockPublicAcls": False}), "BlockPublicAcls is not true"),
]


def self_test(template):
    import copy
    missed = []
    for label, mutate, expected in BROKEN:
        t = copy.deepcopy(template)
        mutate(t)
        problems = []
        check(t, problems)
        if not any(expected in p for p in problems):
            missed.append(f"{label}: expected a problem containing {expected!r}, got {problems or 'none'}")
    if missed:
        print("FAIL: the checks no longer catch known-broken templates:")
        for m in missed:
            print(f"  - {m}")
        return False
    print(f"ok: self-test, {len(BROKEN)} known-broken variants of the template are all caught")
    return True


def main():
    problems = []
    template = yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)
    try:
        if not self_test(template):
            return 1
    except (StopIteration, KeyError, ValueError) as e:
        print(f"FAIL: the self-test cannot find what it breaks ({type(e).__name__}: {e}); update BROKEN in deploy/check_aws.py")
        return 1
    check(template, problems)

    # 3. Variable names.
    known = set()
    for rs in ROOT.glob("*/src/**/*.rs"):
        # clap settings (`env = "…"`) and variables read directly (`env::var("…")`)
        known.update(
            re.findall(r'(?:env\s*=\s*|env::var(?:_os)?\(\s*)"(DARKROOM_[A-Z0-9_]+)"', rs.read_text(errors="replace"))
        )
    used = {}
    for f in list((ROOT / "deploy" / "aws").glob("*.yaml")) + list((ROOT / "deploy" / "kubernetes").glob("*.yaml")):
        for name in re.findall(r"\b(DARKROOM_[A-Z0-9_]+)\b", f.read_text()):
            used.setdefault(name, f.relative_to(ROOT))
    if not known:
        problems.append("found no `env = \"DARKROOM_…\"` in */src: cannot check variable names")
    else:
        for name, f in sorted(used.items()):
            if name not in known and name not in PENDING_ENV:
                problems.append(f"{f}: sets {name}, which no binary reads (typo?)")
        for name in sorted(PENDING_ENV & known):
            print(f"note: {name} is in the source now; drop it from PENDING_ENV in deploy/check_aws.py")

    if problems:
        print(f"FAIL: {len(problems)} problem(s) in {TEMPLATE.relative_to(ROOT)}:")
        for p in problems:
            print(f"  - {p}")
        return 1
    print(f"ok: {TEMPLATE.relative_to(ROOT)}: IAM policies grant exactly what web, processor and init call; "
          f"queues, bucket and drain settings as required; {len(used)} DARKROOM_* names all read by the binaries")
    return 0


if __name__ == "__main__":
    sys.exit(main())
