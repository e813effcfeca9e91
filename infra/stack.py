"""The MemeGen deployment on Google Cloud, as a CDK Terrain (CDKTF) stack.

Synthesizes plain Terraform JSON (``cdktf.out/stacks/memegen/cdk.tf.json``)
that ``terraform`` or OpenTofu applies; nothing here is needed at apply time.
Constructs stay thin: one method per concern, every name and number from a
Terraform variable or from the measured defaults below.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cdktn import (
    AssetType,
    Fn,
    TerraformAsset,
    TerraformOutput,
    TerraformStack,
    TerraformVariable,
    TerraformVariableValidationConfig,
    Token,
)
from cdktn_provider_google.cloud_run_v2_service_iam_member import CloudRunV2ServiceIamMember
from cdktn_provider_google.cloudfunctions2_function import (
    Cloudfunctions2Function,
    Cloudfunctions2FunctionBuildConfig,
    Cloudfunctions2FunctionBuildConfigSource,
    Cloudfunctions2FunctionBuildConfigSourceStorageSource,
    Cloudfunctions2FunctionEventTrigger,
    Cloudfunctions2FunctionEventTriggerEventFilters,
    Cloudfunctions2FunctionServiceConfig,
)
from cdktn_provider_google.data_google_storage_project_service_account import (
    DataGoogleStorageProjectServiceAccount,
)
from cdktn_provider_google.project_iam_audit_config import (
    ProjectIamAuditConfig,
    ProjectIamAuditConfigAuditLogConfig,
)
from cdktn_provider_google.project_iam_custom_role import ProjectIamCustomRole
from cdktn_provider_google.project_iam_member import ProjectIamMember, ProjectIamMemberCondition
from cdktn_provider_google.project_service import ProjectService
from cdktn_provider_google.provider import GoogleProvider
from cdktn_provider_google.pubsub_topic import PubsubTopic
from cdktn_provider_google.pubsub_topic_iam_member import PubsubTopicIamMember
from cdktn_provider_google.service_account import ServiceAccount
from cdktn_provider_google.service_account_iam_member import ServiceAccountIamMember
from cdktn_provider_google.storage_bucket import (
    StorageBucket,
    StorageBucketCors,
    StorageBucketLifecycleRule,
    StorageBucketLifecycleRuleAction,
    StorageBucketLifecycleRuleCondition,
    StorageBucketVersioning,
)
from cdktn_provider_google.storage_bucket_iam_member import StorageBucketIamMember
from cdktn_provider_google.storage_bucket_object import StorageBucketObject
from cdktn_provider_google.storage_notification import StorageNotification
from constructs import Construct

from memegen.contract import FINALIZED, MAX_EVENT_AGE_SECONDS, RECORD_PREFIX, UPLOAD_PREFIX
from memegen.settings import Settings

APIS = (
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "eventarc.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",  # signBlob: the api signs URLs without a key file
    "logging.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "storage.googleapis.com",
)


@dataclass(frozen=True)
class Sizing:
    """Per-function resources, from measurements (README, "Scale").

    ``on_upload``: a 12 MP photo peaks under 300 MB and takes about 0.2 s of one
    CPU after a cold start of about 1 s; one meme at a time per instance keeps
    its memory bounded and its latency flat, and the timeout covers a cold start
    plus the largest upload many times over. ``api`` signs URLs and reads small
    records: light work, many requests per instance.
    """

    on_upload_memory: str = "1Gi"
    on_upload_cpu: str = "1"
    on_upload_timeout_s: int = 120
    on_upload_concurrency: int = 1
    api_memory: str = "512Mi"
    api_cpu: str = "1"
    api_timeout_s: int = 30
    api_concurrency: int = 40


class MemeGenStack(TerraformStack):
    """Buckets, the two functions, the upload trigger, the events topic and one identity per part."""

    def __init__(self, scope: Construct, id: str, *, archives: dict[str, Path], sizing: Sizing | None = None) -> None:
        super().__init__(scope, id)
        self.sizing = sizing or Sizing()
        self._variables()
        GoogleProvider(self, "google", project=self.project.string_value, region=self.region.string_value)
        self.services = [
            ProjectService(self, f"api-{api.split('.')[0]}", service=api, disable_on_destroy=False) for api in APIS
        ]
        self._identities()
        self._buckets()
        self._sources(archives)
        self._api_function()
        self._on_upload_function()
        self._events()
        self._audit_logs()
        self._outputs()

    # --- inputs -------------------------------------------------------------------------------------------------

    def _variables(self) -> None:
        def check(condition: str, message: str) -> list[TerraformVariableValidationConfig]:
            return [TerraformVariableValidationConfig(condition=condition, error_message=message)]

        self.project = TerraformVariable(
            self,
            "project",
            type="string",
            description="The Google Cloud project id to deploy into.",
            validation=check(
                'can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project))', "project must be a project id."
            ),
        )
        self.region = TerraformVariable(
            self,
            "region",
            type="string",
            default="europe-west1",
            description="Region of the buckets, functions and trigger (one region keeps the data in one place).",
            validation=check('can(regex("^[a-z]+-[a-z]+[0-9]$", var.region))', "region must be like europe-west1."),
        )
        self.prefix = TerraformVariable(
            self,
            "name_prefix",
            type="string",
            default="memegen",
            description="Prefix of every resource name; bucket names add the project id to be globally unique.",
            validation=check(
                'can(regex("^[a-z][a-z0-9-]{1,14}$", var.name_prefix))',
                "name_prefix: 2 to 15 lower-case letters, digits or dashes, starting with a letter.",
            ),
        )
        self.max_bytes = TerraformVariable(
            self,
            "max_upload_bytes",
            type="number",
            default=20_000_000,
            description="Largest upload accepted, in bytes (the signed URL's content-length-range and the engine's).",
            validation=check(
                "var.max_upload_bytes >= 100000 && var.max_upload_bytes <= 50000000",
                "max_upload_bytes must be between 100 kB and 50 MB.",
            ),
        )
        self.retention_days = TerraformVariable(
            self,
            "meme_retention_days",
            type="number",
            default=30,
            description="Days a meme and its record are kept in the output bucket.",
            validation=check(
                "var.meme_retention_days >= 1 && var.meme_retention_days <= 3650",
                "meme_retention_days must be between 1 and 3650.",
            ),
        )
        self.on_upload_max = TerraformVariable(
            self,
            "on_upload_max_instances",
            type="number",
            default=20,
            description="Cap on on_upload instances (the cost cap; one meme at a time each).",
            validation=check(
                "var.on_upload_max_instances >= 1 && var.on_upload_max_instances <= 1000",
                "on_upload_max_instances must be between 1 and 1000.",
            ),
        )
        self.api_max = TerraformVariable(
            self,
            "api_max_instances",
            type="number",
            default=5,
            description="Cap on api instances.",
            validation=check(
                "var.api_max_instances >= 1 && var.api_max_instances <= 100",
                "api_max_instances must be between 1 and 100.",
            ),
        )
        self.public_page = TerraformVariable(
            self,
            "public_page",
            type="bool",
            default=True,
            description="Let anyone open the upload page (allUsers may invoke api). false: only IAM principals.",
        )
        self.audit_logs = TerraformVariable(
            self,
            "storage_audit_logs",
            type="bool",
            default=True,
            description=(
                "Turn on Cloud Audit Logs' Data Access logs (reads and writes) for Cloud Storage in the project:"
                " who read or wrote which object. false: leave the project's audit configuration alone."
            ),
        )
        self.extra_origins = TerraformVariable(
            self,
            "extra_cors_origins",
            type="list(string)",
            default=[],
            description="More origins allowed to PUT uploads (a custom domain in front of the page, say).",
            validation=check(
                'alltrue([for o in var.extra_cors_origins : can(regex("^https://[^/]+$", o))])',
                "extra_cors_origins must be https origins without a path.",
            ),
        )

    def _audit_logs(self) -> None:
        """Data Access audit logs for Cloud Storage: the record of object access that bucket usage logs
        (checkov's CKV_GCP_62, skipped in infra/checkov.yaml) would otherwise keep in another bucket."""
        ProjectIamAuditConfig(
            self,
            "storage-audit-logs",
            project=self.project.string_value,
            service="storage.googleapis.com",
            audit_log_config=[
                ProjectIamAuditConfigAuditLogConfig(log_type="DATA_READ"),
                ProjectIamAuditConfigAuditLogConfig(log_type="DATA_WRITE"),
            ],
            count=Token.as_number(Fn.conditional(self.audit_logs.boolean_value, 1, 0)),
        )

    def _name(self, suffix: str) -> str:
        return f"{self.prefix.string_value}-{suffix}"

    def _bucket_name(self, suffix: str) -> str:
        return f"{self.prefix.string_value}-{self.project.string_value}-{suffix}"

    # --- identities ---------------------------------------------------------------------------------------------

    def _identities(self) -> None:
        def account(key: str, purpose: str) -> ServiceAccount:
            return ServiceAccount(
                self,
                f"sa-{key}",
                account_id=self._name(key),
                display_name=f"MemeGen {purpose}",
                depends_on=self.services,
            )

        self.on_upload_sa = account("on-upload", "on_upload function: reads uploads, writes memes")
        self.api_sa = account("api", "api function: signs upload and meme URLs")
        self.trigger_sa = account("trigger", "Eventarc trigger: invokes on_upload")
        self.build_sa = account("build", "builds the functions' containers")
        self.gcs_agent = DataGoogleStorageProjectServiceAccount(
            self, "gcs-agent", project=self.project.string_value, depends_on=self.services
        )
        project = self.project.string_value
        # The only project-level grants: narrow roles that have no resource-level form.
        grants = {
            "trigger-receiver": ("roles/eventarc.eventReceiver", self.trigger_sa.member),
            "build-logs": ("roles/logging.logWriter", self.build_sa.member),
            "build-images": ("roles/artifactregistry.writer", self.build_sa.member),
            # Eventarc's Cloud Storage triggers publish through a topic of their own.
            "gcs-publisher": ("roles/pubsub.publisher", self.gcs_agent.member),
        }
        self.grants = [
            ProjectIamMember(self, key, project=project, role=role, member=member)
            for key, (role, member) in grants.items()
        ]
        # Cloud Functions copies each source archive into its own gcf-v2-sources-* bucket, from which
        # the build reads it: object reads there and nowhere else.
        self.grants.append(
            ProjectIamMember(
                self,
                "build-reads-function-sources",
                project=project,
                role="roles/storage.objectViewer",
                member=self.build_sa.member,
                condition=ProjectIamMemberCondition(
                    title="gcf-v2-sources only",
                    expression='resource.name.startsWith("projects/_/buckets/gcf-v2-sources-")',
                ),
            )
        )
        # The api signs URLs as itself through signBlob: Token Creator on itself, nothing wider.
        ServiceAccountIamMember(
            self,
            "api-signs-as-itself",
            service_account_id=self.api_sa.name,
            role="roles/iam.serviceAccountTokenCreator",
            member=self.api_sa.member,
        )

    # --- storage ------------------------------------------------------------------------------------------------

    def _bucket(
        self, key: str, *, versioned: bool, rules: list[StorageBucketLifecycleRule], **extra: object
    ) -> StorageBucket:
        return StorageBucket(
            self,
            key,
            name=self._bucket_name(key),
            location=self.region.string_value,
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            versioning=StorageBucketVersioning(enabled=versioned),
            lifecycle_rule=rules,
            depends_on=self.services,
            **extra,  # type: ignore[arg-type]
        )

    def _buckets(self) -> None:
        def delete_after(days: int | float, **condition: object) -> StorageBucketLifecycleRule:
            return StorageBucketLifecycleRule(
                action=StorageBucketLifecycleRuleAction(type="Delete"),
                condition=StorageBucketLifecycleRuleCondition(age=days, **condition),  # type: ignore[arg-type]
            )

        # Uploads are transient: the meme is the product. No versioning, so a deleted upload is gone.
        self.input_bucket = self._bucket("input", versioned=False, rules=[delete_after(1)])
        # Memes and records are written once (generation preconditions); versioning keeps an
        # accidental delete or overwrite recoverable for a week.
        self.output_bucket = self._bucket(
            "output",
            versioned=True,
            rules=[
                StorageBucketLifecycleRule(
                    action=StorageBucketLifecycleRuleAction(type="Delete"),
                    condition=StorageBucketLifecycleRuleCondition(age=self.retention_days.number_value),
                ),
                StorageBucketLifecycleRule(
                    action=StorageBucketLifecycleRuleAction(type="Delete"),
                    condition=StorageBucketLifecycleRuleCondition(days_since_noncurrent_time=7),
                ),
            ],
        )
        self.source_bucket = self._bucket(
            "source",
            versioned=True,
            rules=[
                StorageBucketLifecycleRule(
                    action=StorageBucketLifecycleRuleAction(type="Delete"),
                    condition=StorageBucketLifecycleRuleCondition(days_since_noncurrent_time=30),
                )
            ],
        )
        # Deleting a meme (its uploader's DELETE, or the worker cleaning up after one mid-way) needs
        # object deletes, and no predefined role has them without reads of the input bucket.
        deleter = ProjectIamCustomRole(
            self,
            "object-deleter",
            project=self.project.string_value,
            role_id=Fn.replace(self._name("object_deleter"), "-", "_"),
            title="MemeGen object deleter",
            description="Deletes objects: a meme, its records and its photo, when its uploader asks.",
            permissions=["storage.objects.delete"],
            depends_on=self.services,
        )
        access = {
            "on-upload-reads-input": (self.input_bucket, "roles/storage.objectViewer", self.on_upload_sa),
            "on-upload-reads-output": (self.output_bucket, "roles/storage.objectViewer", self.on_upload_sa),
            "on-upload-writes-output": (self.output_bucket, "roles/storage.objectCreator", self.on_upload_sa),
            # The signed PUT acts as the api's identity, so the api may create uploads, but neither
            # list nor read them: it learns an upload's state from the records in the output bucket,
            # where it writes the "pending" record of each upload URL it issues.
            "api-creates-uploads": (self.input_bucket, "roles/storage.objectCreator", self.api_sa),
            "api-reads-output": (self.output_bucket, "roles/storage.objectViewer", self.api_sa),
            "api-writes-records": (self.output_bucket, "roles/storage.objectCreator", self.api_sa),
            "build-reads-source": (self.source_bucket, "roles/storage.objectViewer", self.build_sa),
            "api-deletes-uploads": (self.input_bucket, deleter.name, self.api_sa),
            "api-deletes-memes": (self.output_bucket, deleter.name, self.api_sa),
            "on-upload-deletes-memes": (self.output_bucket, deleter.name, self.on_upload_sa),
        }
        for key, (bucket, role, sa) in access.items():
            StorageBucketIamMember(self, key, bucket=bucket.name, role=role, member=sa.member)

    def _sources(self, archives: dict[str, Path]) -> None:
        self.sources: dict[str, StorageBucketObject] = {}
        for function, path in archives.items():
            # The object's name is the archive's (its content hash): new code, new object, new deploy.
            asset = TerraformAsset(self, f"{function}-archive", path=str(path.resolve()), type=AssetType.FILE)
            self.sources[function] = StorageBucketObject(
                self, f"{function}-source", bucket=self.source_bucket.name, name=path.name, source=asset.path
            )

    # --- functions ----------------------------------------------------------------------------------------------

    def _settings_env(self) -> dict[str, str]:
        """The ``MEMEGEN_*`` settings both functions read (``memegen.settings.Settings``).

        Bucket names come from the variables, not from the bucket resources: the input
        bucket's CORS names the api's URL, so the api may not depend on that bucket.
        """
        defaults = Settings()
        return {
            "MEMEGEN_INPUT_BUCKET": self._bucket_name("input"),
            "MEMEGEN_OUTPUT_BUCKET": self._bucket_name("output"),
            "MEMEGEN_UPLOAD_PREFIX": UPLOAD_PREFIX,
            "MEMEGEN_MAX_BYTES": Fn.tostring(self.max_bytes.number_value),
            "MEMEGEN_URL_TTL_SECONDS": str(defaults.url_ttl_seconds),
            # The page tells people how long a meme is kept: the output bucket's lifecycle rule.
            "MEMEGEN_MEME_RETENTION_DAYS": Fn.tostring(self.retention_days.number_value),
            "MEMEGEN_MAX_EVENT_AGE_SECONDS": str(defaults.max_event_age_seconds),
            # One inference thread: the function's one CPU (Sizing.on_upload_cpu) serves one event at a time.
            "MEMEGEN_THREADS": str(defaults.threads),
        }

    def _function(
        self,
        function: str,
        *,
        identity: ServiceAccount,
        memory: str,
        cpu: str,
        timeout_s: int,
        concurrency: int,
        max_instances: TerraformVariable,
        ingress: str,
        invoker_key: str,
        invoker: str,
        invoker_count: float | None = None,
        env: dict[str, str] | None = None,
        **extra: object,
    ) -> Cloudfunctions2Function:
        """One function built from its archive, run as ``identity``, and the one member that may invoke it.

        What both functions share lives here; each caller names only what differs: its identity and
        sizing, who may call it (``invoker``, created under ``invoker_key``, ``invoker_count`` times),
        settings beyond ``_settings_env`` (``env``), and in ``extra`` its trigger or dependencies.
        """
        source = self.sources[function]
        built = Cloudfunctions2Function(
            self,
            function,
            name=self._name(function.replace("_", "-")),
            location=self.region.string_value,
            description=f"MemeGen {function}",
            build_config=Cloudfunctions2FunctionBuildConfig(
                runtime="python312",
                entry_point=function,
                service_account=self.build_sa.id,
                source=Cloudfunctions2FunctionBuildConfigSource(
                    storage_source=Cloudfunctions2FunctionBuildConfigSourceStorageSource(
                        bucket=self.source_bucket.name, object=source.name
                    )
                ),
            ),
            service_config=Cloudfunctions2FunctionServiceConfig(
                service_account_email=identity.email,
                available_memory=memory,
                available_cpu=cpu,
                timeout_seconds=timeout_s,
                max_instance_count=max_instances.number_value,
                max_instance_request_concurrency=concurrency,
                ingress_settings=ingress,
                environment_variables={**self._settings_env(), **(env or {})},
            ),
            **{"depends_on": self.services, **extra},  # type: ignore[arg-type]
        )
        CloudRunV2ServiceIamMember(
            self,
            invoker_key,
            count=invoker_count,
            name=built.name,
            location=self.region.string_value,
            role="roles/run.invoker",
            member=invoker,
        )
        return built

    def _api_function(self) -> None:
        s = self.sizing
        self.api = self._function(
            "api",
            identity=self.api_sa,
            memory=s.api_memory,
            cpu=s.api_cpu,
            timeout_s=s.api_timeout_s,
            concurrency=s.api_concurrency,
            max_instances=self.api_max,
            ingress="ALLOW_ALL",
            # Anyone may open the page, unless public_page is false.
            invoker_key="api-public",
            invoker="allUsers",
            invoker_count=Token.as_number(Fn.conditional(self.public_page.boolean_value, 1, 0)),
            env={"MEMEGEN_SIGNING_SERVICE_ACCOUNT": self.api_sa.email},
        )
        page_origins = Token.as_list(Fn.concat([[self.api.service_config.uri], self.extra_origins.list_value]))
        # The page PUTs straight to the input bucket: only from the page's own origin, only PUT.
        self.input_bucket.put_cors(
            [
                StorageBucketCors(
                    origin=page_origins,
                    method=["PUT"],
                    # Every header the signed upload URL carries (memegen.cloud.storage.Store.new_upload).
                    response_header=[
                        "Content-Type",
                        "x-goog-content-length-range",
                        "x-goog-if-generation-match",
                        "x-goog-meta-*",
                    ],
                    max_age_seconds=3600,
                )
            ]
        )
        # The page fetches the finished meme once (to show, download and share the same bytes):
        # a cross-origin GET of a signed URL, which the browser lets the page read only with this.
        self.output_bucket.put_cors(
            [
                StorageBucketCors(
                    origin=page_origins,
                    method=["GET", "HEAD"],
                    response_header=["Content-Type"],
                    max_age_seconds=3600,
                )
            ]
        )

    def _on_upload_function(self) -> None:
        s = self.sizing
        self.on_upload = self._function(
            "on_upload",
            identity=self.on_upload_sa,
            memory=s.on_upload_memory,
            cpu=s.on_upload_cpu,
            timeout_s=s.on_upload_timeout_s,
            concurrency=s.on_upload_concurrency,
            max_instances=self.on_upload_max,
            # Eventarc's delivery counts as internal traffic: nothing else can call it.
            ingress="ALLOW_INTERNAL_ONLY",
            invoker_key="trigger-invokes-on-upload",
            invoker=self.trigger_sa.member,
            event_trigger=Cloudfunctions2FunctionEventTrigger(
                event_type=FINALIZED,
                event_filters=[
                    Cloudfunctions2FunctionEventTriggerEventFilters(attribute="bucket", value=self.input_bucket.name)
                ],
                # Off by default through the API: a transient failure must be delivered again.
                retry_policy="RETRY_POLICY_RETRY",
                service_account_email=self.trigger_sa.email,
                trigger_region=self.region.string_value,
            ),
            # Eventarc checks the trigger's and the storage agent's roles when it creates the trigger.
            depends_on=[*self.services, *self.grants],
        )

    # --- integration --------------------------------------------------------------------------------------------

    def _events(self) -> None:
        self.topic = PubsubTopic(
            self,
            "events",
            name=self._name("memes"),
            message_retention_duration=f"{MAX_EVENT_AGE_SECONDS}s",
            depends_on=self.services,
        )
        publisher = PubsubTopicIamMember(
            self,
            "gcs-publishes-events",
            topic=self.topic.name,
            role="roles/pubsub.publisher",
            member=self.gcs_agent.member,
        )
        # One message per record made (pending, done or failed), and per record deleted (its uploader
        # deleted the meme, or the lifecycle rule expired it): subscribers read the record, never poll.
        StorageNotification(
            self,
            "records-notification",
            bucket=self.output_bucket.name,
            topic=self.topic.id,
            payload_format="JSON_API_V1",
            event_types=["OBJECT_FINALIZE", "OBJECT_ARCHIVE", "OBJECT_DELETE"],
            object_name_prefix=RECORD_PREFIX,
            depends_on=[publisher],
        )

    def _outputs(self) -> None:
        outputs = {
            # The Cloud Run address (scheme and host, no path): the page's own fetches go to /v1/...
            # at its root, and a browser's Origin is exactly this, as the input bucket's CORS needs.
            "page_url": (self.api.service_config.uri, "The upload page (the api function's run.app address)."),
            "input_bucket": (self.input_bucket.name, "Uploads land here (under uploads/)."),
            "output_bucket": (self.output_bucket.name, "Memes (memes/) and their records (records/)."),
            "events_topic": (
                self.topic.name,
                "Pub/Sub topic: a message for every record made (pending, done, failed) or deleted.",
            ),
            "on_upload_function": (self.on_upload.name, "The function the uploads trigger."),
        }
        for key, (value, description) in outputs.items():
            TerraformOutput(self, key, value=value, description=description)
