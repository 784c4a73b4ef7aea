//! Server reflection as a client sees it: the services a server lists, through the v1 and
//! the older v1alpha protocol (the same messages in two packages, hence one macro).

use tonic::transport::Channel;
use tonic_reflection::pb::{v1, v1alpha};

/// Defines `$name(channel) -> Vec<String>`: one ListServices request over reflection package
/// `$pb`, panicking when the answer is anything else.
macro_rules! list_services_over {
    ($(#[$doc:meta])* $name:ident, $pb:ident) => {
        $(#[$doc])*
        pub async fn $name(channel: Channel) -> Vec<String> {
            let request = $pb::ServerReflectionRequest {
                host: String::new(),
                message_request: Some(
                    $pb::server_reflection_request::MessageRequest::ListServices(String::new()),
                ),
            };
            let answer = $pb::server_reflection_client::ServerReflectionClient::new(channel)
                .server_reflection_info(tokio_stream::iter(vec![request]))
                .await
                .unwrap()
                .into_inner()
                .message()
                .await
                .unwrap()
                .expect("a reflection answer");
            match answer.message_response {
                Some($pb::server_reflection_response::MessageResponse::ListServicesResponse(
                    list,
                )) => list.service.into_iter().map(|s| s.name).collect(),
                other => panic!("unexpected reflection answer {other:?}"),
            }
        }
    };
}

list_services_over!(
    /// The service names the server lists over reflection v1.
    list_services,
    v1
);
list_services_over!(
    /// The service names the server lists over reflection v1alpha.
    list_services_v1alpha,
    v1alpha
);

/// Asserts that the server behind `channel` lists `service` over reflection v1.
pub async fn assert_lists(channel: Channel, service: &str) {
    let names = list_services(channel).await;
    assert!(names.iter().any(|s| s == service), "{names:?}");
}
