//! Connections: the accept loop and HTTP/1.1 serving, served by hand
//! (not `axum::serve`) so that a request can have its connection closed
//! without an answer ([`super::FaultKind::Reset`]) and the server can
//! refuse connections ([`super::ApiServer::refuse_connections`]).

use super::{Shared, routes};
use axum::body::Body;
use axum::extract::State;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// Lets a request's handler close its connection without an answer; found
/// in every request's extensions.
#[derive(Clone, Default)]
pub(crate) struct ConnControl(Arc<Notify>);

impl ConnControl {
    /// Closes the connection with a TCP reset, dropping whatever is in
    /// flight on it.
    pub fn reset(&self) {
        self.0.notify_one();
    }
}

/// Accepts until shutdown. While refusing, new connections are reset at
/// once.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown_tx.subscribe();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait_for(|v| *v) => return,
        };
        let Ok((stream, _)) = accepted else {
            // E.g. out of file descriptors: let others run, then retry.
            tokio::task::yield_now().await;
            continue;
        };
        if *shared.refusing.borrow() {
            abort(&stream);
            continue;
        }
        tokio::spawn(connection(stream, shared.clone()));
    }
}

/// Makes the socket's close send a reset (RST) instead of a clean FIN.
fn abort(socket: &impl AsFd) {
    let _ = socket2::SockRef::from(socket).set_linger(Some(Duration::ZERO));
}

async fn connection(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    // A second handle on the socket, to reset it after hyper's is dropped.
    let Ok(socket) = stream.as_fd().try_clone_to_owned() else {
        return;
    };
    let ctl = ConnControl::default();
    let svc = {
        let (shared, ctl) = (shared.clone(), ctl.clone());
        hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
            req.extensions_mut().insert(ctl.clone());
            let shared = shared.clone();
            async move { Ok::<_, Infallible>(routes::handle(State(shared), req.map(Body::new)).await) }
        })
    };
    let mut conn = Box::pin(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc));
    let mut shutdown = shared.shutdown_tx.subscribe();
    let mut refusing = shared.refusing.subscribe();
    let mut draining = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = ctl.0.notified() => break,
            _ = refusing.wait_for(|on| *on) => break,
            _ = shutdown.wait_for(|v| *v), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
    abort(&socket);
    drop(conn);
}
