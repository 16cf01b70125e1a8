//! Host applications the web tests mount plans in, over real sockets.

/// A host server: its base URL; dropping it stops the server.
pub struct Running {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    stop: Option<Box<dyn FnOnce() + Send>>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop();
        }
    }
}

/// Serves `app` on a free port of 127.0.0.1.
pub async fn axum(app: axum::Router) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Running {
        base: format!("http://{addr}"),
        stop: Some(Box::new(move || task.abort())),
    }
}

/// Serves an actix-web app configured by `configure` on a free port of 127.0.0.1, with two
/// workers, on a thread of its own (actix-web runs its own system).
pub fn actix<F>(configure: F) -> Running
where
    F: Fn(&mut actix_web::web::ServiceConfig) + Send + Clone + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = actix_web::HttpServer::new(move || {
                actix_web::App::new().configure(configure.clone())
            })
            .workers(2)
            .bind(("127.0.0.1", 0))
            .unwrap();
            let addr = server.addrs()[0];
            let server = server.run();
            tx.send((addr, server.handle())).unwrap();
            server.await.unwrap();
        });
    });
    let (addr, handle) = rx.recv().unwrap();
    Running {
        base: format!("http://{addr}"),
        stop: Some(Box::new(move || drop(handle.stop(false)))),
    }
}
