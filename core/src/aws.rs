//! One place that builds AWS SDK clients, so S3 and SQS share an HTTPS client (rustls with
//! ring; no aws-lc build) and the settings that local S3/SQS-compatible servers need.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::Region;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

use crate::misconfig::{Misconfiguration, Problem, Resource};

/// How long one try of the EC2 instance metadata service (IMDS) may take, and how many tries:
/// on EC2 it answers within milliseconds; elsewhere (a laptop, most CI) it is not there, and
/// the SDK's defaults (1 s + 1 s, 4 tries) would spend seconds on every credentials lookup.
const IMDS_TIMEOUT: Duration = Duration::from_millis(1000);
const IMDS_ATTEMPTS: u32 = 2;

/// Load the SDK configuration from the standard AWS environment (`AWS_ENDPOINT_URL`,
/// `AWS_REGION`, `AWS_ACCESS_KEY_ID`, profiles with keys, SSO or `credential_process`, web
/// identity, container and instance roles). The region falls back to us-east-1. The instance
/// metadata service is asked quickly or not at all (`AWS_EC2_METADATA_DISABLED=true`).
pub async fn sdk_config() -> SdkConfig {
    use aws_config::default_provider::credentials::DefaultCredentialsChain;
    use aws_config::meta::region::RegionProviderChain;
    use aws_config::provider_config::ProviderConfig;

    let http = https_client();
    let providers = ProviderConfig::default().with_http_client(http.clone());
    let imds = aws_config::imds::Client::builder()
        .configure(&providers)
        .max_attempts(IMDS_ATTEMPTS)
        .connect_timeout(IMDS_TIMEOUT)
        .read_timeout(IMDS_TIMEOUT)
        .build();
    let region = RegionProviderChain::first_try(aws_config::environment::EnvironmentVariableRegionProvider::new())
        .or_else(aws_config::profile::ProfileFileRegionProvider::builder().configure(&providers).build())
        .or_else(aws_config::imds::region::ImdsRegionProvider::builder().imds_client(imds.clone()).build())
        .or_else(Region::new("us-east-1"))
        .region()
        .await;
    let credentials = DefaultCredentialsChain::builder()
        .configure(providers.with_region(region.clone()))
        .imds_client(imds)
        .build()
        .await;
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .credentials_provider(credentials)
        .timeout_config(TimeoutConfig::builder().connect_timeout(Duration::from_secs(5)).build());
    if let Some(region) = region {
        loader = loader.region(region);
    }
    loader.load().await
}

/// An S3 client; `path_style` is needed by most local S3-compatible servers.
pub fn s3_client(config: &SdkConfig, path_style: bool) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(path_style)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(60))
                .build(),
        )
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// An SQS client whose attempt timeout sits above the 20 s long poll (aws-sdk-rust#1094).
pub fn sqs_client(config: &SdkConfig) -> aws_sdk_sqs::Client {
    let conf = aws_sdk_sqs::config::Builder::from(config)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(30))
                .build(),
        )
        .build();
    aws_sdk_sqs::Client::from_conf(conf)
}

/// Is an endpoint override configured (a local or third-party S3/SQS-compatible server)?
pub fn has_endpoint_override(config: &SdkConfig) -> bool {
    config.endpoint_url().is_some()
}

fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring)).build_https()
}

/// SDK configuration for a local S3/SQS-compatible server with static test credentials,
/// without reading the environment (tests run many servers in one process).
pub async fn local_sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new("test", "test", None, None, "darkroom-local"))
        .load()
        .await
}

/// The configuration error an AWS service's error code (and message) means, if any: a missing
/// or forbidden resource, a KMS key that refuses, credentials the service refuses or that
/// have expired. Codes of S3 (REST-XML) and SQS (query and JSON protocols) both.
pub fn problem_of(code: &str, message: &str) -> Option<Problem> {
    let code = code.trim();
    let kms = code.starts_with("KMS.") || code.starts_with("Kms") || message.contains("kms:");
    Some(match code {
        "NoSuchBucket" | "AWS.SimpleQueueService.NonExistentQueue" | "QueueDoesNotExist" => Problem::Missing,
        _ if code.contains("NonExistentQueue") => Problem::Missing,
        _ if kms => Problem::KmsAccessDenied,
        "AccessDenied" | "AccessDeniedException" | "AllAccessDisabled" | "AuthorizationError" | "Forbidden" => {
            Problem::AccessDenied
        }
        "InvalidAccessKeyId"
        | "SignatureDoesNotMatch"
        | "InvalidClientTokenId"
        | "UnrecognizedClientException"
        | "IncompleteSignature"
        | "MissingAuthenticationToken"
        | "InvalidSecurity"
        | "InvalidToken" => Problem::InvalidCredentials,
        "ExpiredToken" | "ExpiredTokenException" | "TokenRefreshRequired" => Problem::ExpiredCredentials,
        "PermanentRedirect" | "AuthorizationHeaderMalformed" | "IllegalLocationConstraintException" => {
            Problem::WrongRegion
        }
        _ => return None,
    })
}

/// The configuration error behind an SDK error, if it is one: a service answer
/// [`problem_of`] recognises (credentials problems belong to the credentials, not to
/// `resource`), or a request that never left because no credentials could be loaded.
pub fn misconfiguration<E, R>(
    resource: Resource,
    e: &aws_smithy_runtime_api::client::result::SdkError<E, R>,
) -> Option<Misconfiguration>
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_smithy_runtime_api::client::result::SdkError;
    match e {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("");
            let message = se.err().message().unwrap_or("");
            let problem = problem_of(code, message)?;
            let detail = if message.is_empty() { code.to_string() } else { format!("{code}: {message}") };
            let resource = match problem {
                Problem::InvalidCredentials | Problem::ExpiredCredentials => Resource::Credentials,
                _ => resource,
            };
            Some(Misconfiguration::new(resource, problem, detail))
        }
        SdkError::DispatchFailure(_) => {
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                if let Some(c) = s.downcast_ref::<CredentialsError>() {
                    return credentials_misconfiguration(c);
                }
                source = s.source();
            }
            None
        }
        _ => None,
    }
}

/// A configuration error for credentials that could not be loaded; `None` when it may pass
/// (the provider timed out).
pub fn credentials_misconfiguration(e: &CredentialsError) -> Option<Misconfiguration> {
    match e {
        CredentialsError::CredentialsNotLoaded(_) => {
            Some(Misconfiguration::new(Resource::Credentials, Problem::NoCredentials, ""))
        }
        CredentialsError::ProviderTimedOut(_) => None,
        other => Some(Misconfiguration::new(Resource::Credentials, Problem::CredentialsUnusable, one_line(other))),
    }
}

/// An error and its sources on one line, without the debug dump `DisplayErrorContext` adds.
pub fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ").split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Load this process's credentials once, so that a process without any says so in one line
/// at start instead of failing every request. A provider that timed out is not a
/// configuration error (the caller retries).
pub async fn check_credentials(config: &SdkConfig) -> Result<(), CredentialsCheck> {
    use aws_credential_types::provider::ProvideCredentials;
    let Some(provider) = config.credentials_provider() else {
        return Err(CredentialsCheck::Misconfigured(Misconfiguration::new(
            Resource::Credentials,
            Problem::NoCredentials,
            "",
        )));
    };
    match provider.provide_credentials().await {
        Ok(_) => Ok(()),
        Err(e) => match credentials_misconfiguration(&e) {
            Some(m) => Err(CredentialsCheck::Misconfigured(m)),
            None => Err(CredentialsCheck::Unavailable(one_line(&e))),
        },
    }
}

/// Why [`check_credentials`] failed.
#[derive(Debug)]
pub enum CredentialsCheck {
    Misconfigured(Misconfiguration),
    Unavailable(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_codes_that_only_the_operator_can_fix() {
        for (code, message, problem) in [
            ("NoSuchBucket", "", Problem::Missing),
            ("AWS.SimpleQueueService.NonExistentQueue", "", Problem::Missing),
            ("QueueDoesNotExist", "", Problem::Missing),
            ("AccessDenied", "User is not authorized to perform: s3:GetObject", Problem::AccessDenied),
            ("AccessDenied", "User is not authorized to perform: kms:Decrypt", Problem::KmsAccessDenied),
            ("KMS.AccessDeniedException", "", Problem::KmsAccessDenied),
            ("KmsAccessDenied", "", Problem::KmsAccessDenied),
            ("InvalidAccessKeyId", "", Problem::InvalidCredentials),
            ("SignatureDoesNotMatch", "", Problem::InvalidCredentials),
            ("InvalidClientTokenId", "", Problem::InvalidCredentials),
            ("ExpiredToken", "", Problem::ExpiredCredentials),
            ("PermanentRedirect", "", Problem::WrongRegion),
        ] {
            assert_eq!(problem_of(code, message), Some(problem), "{code} {message}");
        }
        for passing in ["SlowDown", "InternalError", "ServiceUnavailable", "ThrottlingException", "NoSuchKey", ""] {
            assert_eq!(problem_of(passing, ""), None, "{passing} is not a configuration error");
        }
    }
}
