//! One place that builds AWS SDK clients, so S3 and SQS share an HTTPS client (rustls with
//! ring; no aws-lc build) and the settings that local S3/SQS-compatible servers need.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::Region;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

/// Load the SDK configuration from the standard AWS environment (`AWS_ENDPOINT_URL`,
/// `AWS_REGION`, `AWS_ACCESS_KEY_ID`, profiles, …). The region falls back to us-east-1.
pub async fn sdk_config() -> SdkConfig {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .timeout_config(TimeoutConfig::builder().connect_timeout(Duration::from_secs(5)).build())
        .load()
        .await;
    if config.region().is_some() {
        return config;
    }
    config.into_builder().region(Region::new("us-east-1")).build()
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
