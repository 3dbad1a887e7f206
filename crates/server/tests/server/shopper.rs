//! A shopper: the chat widget's side of the websocket.

use super::*;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub(crate) struct Shopper {
    pub(crate) ws: Socket,
    /// How long to wait for the next frame.
    pub(crate) timeout: Duration,
}

#[derive(Debug)]
pub(crate) struct Welcome {
    pub(crate) session: String,
    pub(crate) conversation_id: String,
    pub(crate) resumed: bool,
}

pub(crate) fn hello(lang: &str) -> ClientFrame {
    ClientFrame::Hello {
        v: PROTOCOL_VERSION,
        session: None,
        last_seq: None,
        lang: Some(lang.into()),
    }
}

pub(crate) fn resume(session: &str, last_seq: Option<u64>) -> ClientFrame {
    ClientFrame::Hello { v: PROTOCOL_VERSION, session: Some(session.into()), last_seq, lang: None }
}

pub(crate) fn message(client_id: &str, text: &str) -> ClientFrame {
    ClientFrame::Message { client_id: client_id.into(), text: text.into() }
}

pub(crate) fn feedback(seq: u64, rating: Rating, comment: Option<&str>) -> ClientFrame {
    ClientFrame::Feedback { message_seq: seq, rating, comment: comment.map(str::to_owned) }
}

pub(crate) fn verify_order(order_number: &str, email: &str) -> ClientFrame {
    ClientFrame::VerifyOrder { order_number: order_number.into(), email: email.into() }
}

pub(crate) fn start_return(order_number: &str) -> ClientFrame {
    ClientFrame::StartReturn { order_number: order_number.into(), skus: None }
}

impl Shopper {
    pub(crate) async fn connect(addr: SocketAddr) -> Shopper {
        Self::connect_from(addr, None).await.expect("the websocket connects")
    }

    /// Connects as a page on `origin` would (`None`: a client that sends no Origin).
    pub(crate) async fn connect_from(
        addr: SocketAddr,
        origin: Option<&str>,
    ) -> Result<Shopper, tokio_tungstenite::tungstenite::Error> {
        let mut request = format!("ws://{addr}/ws").into_client_request()?;
        if let Some(origin) = origin {
            request.headers_mut().insert("Origin", HeaderValue::from_str(origin).unwrap());
        }
        let (ws, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Shopper { ws, timeout: Duration::from_secs(120) })
    }

    /// Connects and starts a new conversation.
    pub(crate) async fn join(addr: SocketAddr, lang: &str) -> (Shopper, Welcome) {
        let mut shopper = Self::connect(addr).await;
        let welcome = shopper.hello(hello(lang)).await;
        (shopper, welcome)
    }

    pub(crate) async fn hello(&mut self, hello: ClientFrame) -> Welcome {
        self.send_frame(&hello).await;
        match self.recv().await {
            ServerFrame::Welcome { v, session, conversation_id, resumed } => {
                assert_eq!(v, PROTOCOL_VERSION);
                Welcome { session, conversation_id, resumed }
            }
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    pub(crate) async fn send_ws(&mut self, message: Message) {
        self.ws.send(message).await.expect("the frame is sent");
    }

    pub(crate) async fn send_text(&mut self, text: &str) {
        self.send_ws(Message::text(text)).await;
    }

    pub(crate) async fn send(&mut self, frame: Value) {
        self.send_text(&frame.to_string()).await;
    }

    pub(crate) async fn send_frame(&mut self, frame: &ClientFrame) {
        self.send(serde_json::to_value(frame).unwrap()).await;
    }

    pub(crate) async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }

    /// The next data or close message, skipping websocket Ping/Pong; `None`
    /// when the connection has ended.
    pub(crate) async fn next_message(&mut self) -> Option<Message> {
        loop {
            let next = tokio::time::timeout(self.timeout, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("nothing from the server for {:?}", self.timeout));
            match next {
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(message)) => return Some(message),
                Some(Err(_)) | None => return None,
            }
        }
    }

    pub(crate) async fn recv(&mut self) -> ServerFrame {
        match self.next_message().await {
            Some(Message::Text(text)) => serde_json::from_str(text.as_str())
                .unwrap_or_else(|e| panic!("not a server frame ({e}): {text}")),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// Frames up to and including the first that `last` accepts.
    pub(crate) async fn recv_until(
        &mut self,
        last: impl Fn(&ServerFrame) -> bool,
    ) -> Vec<ServerFrame> {
        let mut frames = Vec::new();
        loop {
            let frame = self.recv().await;
            let done = last(&frame);
            frames.push(frame);
            if done {
                return frames;
            }
        }
    }

    /// Every frame until none has come for `quiet` and no answer is half sent.
    pub(crate) async fn settle(&mut self, quiet: Duration) -> Vec<ServerFrame> {
        let mut frames = Vec::new();
        let mut answering = false;
        loop {
            let wait = if answering { self.timeout } else { quiet };
            let next = match tokio::time::timeout(wait, self.ws.next()).await {
                Err(_) if !answering => return frames,
                Err(_) => panic!("an answer never ended: {frames:#?}"),
                Ok(next) => next,
            };
            let frame: ServerFrame = match next {
                Some(Ok(Message::Text(text))) => serde_json::from_str(text.as_str()).unwrap(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            };
            match frame {
                ServerFrame::AnswerStart { .. } => answering = true,
                ServerFrame::AnswerEnd { .. } => answering = false,
                _ => {}
            }
            frames.push(frame);
        }
    }

    /// The next frame must be an error; its code.
    pub(crate) async fn next_error(&mut self) -> ErrorCode {
        match self.recv().await {
            ServerFrame::Error { code, .. } => code,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    /// The next frame must be an error with `code`.
    pub(crate) async fn expect_error(&mut self, code: ErrorCode) {
        match self.recv().await {
            ServerFrame::Error { code: got, message } => {
                assert_eq!(got, code, "{message}");
                assert!(!message.is_empty());
            }
            other => panic!("expected error {code:?}, got {other:?}"),
        }
    }

    /// The heartbeat: the next frame must be `pong`.
    pub(crate) async fn ping(&mut self) {
        self.send_frame(&ClientFrame::Ping).await;
        assert_eq!(self.recv().await, ServerFrame::Pong);
    }

    /// Reads until the server closes; its close code, if it sent one.
    pub(crate) async fn close_code(&mut self) -> Option<u16> {
        loop {
            match self.next_message().await {
                Some(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Some(_) => continue,
                None => return None,
            }
        }
    }

    pub(crate) async fn verify(&mut self, order_number: &str, email: &str) -> String {
        self.send_frame(&verify_order(order_number, email)).await;
        match self.recv().await {
            ServerFrame::Verified { customer_name } => customer_name,
            other => panic!("expected verified, got {other:?}"),
        }
    }

    /// Sends a message and reads its acknowledgement and answer.
    pub(crate) async fn ask(&mut self, client_id: &str, text: &str) -> Answer {
        self.send_frame(&message(client_id, text)).await;
        let answer = self.read_answer().await;
        let acked = answer
            .frames
            .iter()
            .any(|f| matches!(f, ServerFrame::Ack { client_id: id, .. } if id == client_id));
        assert!(acked, "no ack for {client_id}: {answer:#?}");
        answer
    }

    pub(crate) async fn read_answer(&mut self) -> Answer {
        self.finish_answer(AnswerReader::default()).await
    }

    pub(crate) async fn finish_answer(&mut self, mut reader: AnswerReader) -> Answer {
        while !reader.push(self.recv().await) {}
        reader.finish()
    }

    /// Reads an answer up to its first delta, which must not end it.
    pub(crate) async fn read_until_first_delta(&mut self) -> AnswerReader {
        let mut reader = AnswerReader::default();
        loop {
            let frame = self.recv().await;
            let delta = matches!(frame, ServerFrame::Delta { .. });
            assert!(
                !reader.push(frame),
                "the answer ended before it streamed: {:#?}",
                reader.frames
            );
            if delta {
                return reader;
            }
        }
    }
}

/// One answer as the shopper received it.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The seq of the message's `ack`, if one came with the answer.
    pub(crate) ack_seq: Option<u64>,
    pub(crate) seq: u64,
    /// Everything received, in order.
    pub(crate) frames: Vec<ServerFrame>,
    pub(crate) deltas: Vec<String>,
    /// The deltas joined.
    pub(crate) streamed: String,
    /// What the shopper is shown: `answer_end.text` when it has one (a
    /// replaced answer), else the deltas.
    pub(crate) text: String,
    pub(crate) outcome: AnswerOutcome,
    pub(crate) action: Option<AnswerAction>,
    pub(crate) sources: Vec<Source>,
    pub(crate) timings: Timings,
}

/// Collects the frames of one answer and checks their sequence numbers.
#[derive(Default)]
pub(crate) struct AnswerReader {
    pub(crate) frames: Vec<ServerFrame>,
    pub(crate) ack_seq: Option<u64>,
    pub(crate) seq: Option<u64>,
    pub(crate) sources: Vec<(u64, Vec<Source>)>,
    pub(crate) deltas: Vec<String>,
}

impl AnswerReader {
    /// Takes the next frame; true once the answer has ended.
    pub(crate) fn push(&mut self, frame: ServerFrame) -> bool {
        let mut ended = false;
        match &frame {
            ServerFrame::Ack { seq, .. } => self.ack_seq = Some(*seq),
            ServerFrame::AnswerStart { seq } => {
                assert_eq!(self.seq, None, "two answers at once: {:#?}", self.frames);
                self.seq = Some(*seq);
            }
            ServerFrame::Sources { seq, sources } => self.sources.push((*seq, sources.clone())),
            ServerFrame::Delta { seq, index, text } => {
                assert_eq!(Some(*seq), self.seq, "a delta of another answer: {frame:?}");
                assert_eq!(*index, self.deltas.len() as u64, "delta indexes count from 0");
                self.deltas.push(text.clone());
            }
            ServerFrame::AnswerEnd { seq, .. } => {
                assert_eq!(Some(*seq), self.seq, "the end of another answer: {frame:?}");
                ended = true;
            }
            ServerFrame::Busy { .. } => panic!("the server was too busy to answer: {frame:?}"),
            ServerFrame::Error { .. } => panic!("an error instead of an answer: {frame:?}"),
            _ => {}
        }
        self.frames.push(frame);
        ended
    }

    pub(crate) fn finish(self) -> Answer {
        let seq = self.seq.expect("an answer_start");
        let Some(ServerFrame::AnswerEnd {
            outcome,
            text,
            timings,
            action,
            sources: final_sources,
            ..
        }) = self.frames.last().cloned()
        else {
            panic!("the answer has not ended: {:#?}", self.frames);
        };
        assert!(self.sources.len() <= 1, "sources sent twice: {:#?}", self.frames);
        let sources = match self.sources.into_iter().next() {
            Some((sources_seq, sources)) => {
                assert_eq!(sources_seq, seq, "the sources of another answer");
                sources
            }
            None => Vec::new(),
        };
        // What the shopper is shown: the final sources when the end names them.
        let sources = final_sources.unwrap_or(sources);
        let streamed = self.deltas.concat();
        Answer {
            ack_seq: self.ack_seq,
            seq,
            frames: self.frames,
            text: text.unwrap_or_else(|| streamed.clone()),
            deltas: self.deltas,
            streamed,
            outcome,
            action,
            sources,
            timings,
        }
    }
}

/// The longest run of digits that a phone number could be written as: digits
/// with spaces, dashes, dots, brackets or a plus between them.
pub(crate) fn longest_digit_run(text: &str) -> usize {
    let (mut longest, mut run) = (0, 0);
    for c in text.chars() {
        if c.is_ascii_digit() {
            run += 1;
            longest = longest.max(run);
        } else if !matches!(c, ' ' | '-' | '.' | '(' | ')' | '+') {
            run = 0;
        }
    }
    longest
}

pub(crate) fn is_cjk(c: char) -> bool {
    ('\u{4E00}'..='\u{9FFF}').contains(&c)
}
