//! The question's picture drawn with the terminal's own graphics protocol (kitty, iTerm2 or
//! sixel) where the terminal supports one. ratatui-image asks the terminal at start-up; a
//! terminal that answers for none keeps the half-block drawing of `view::media`, which works in
//! every colour terminal and is what the snapshot tests see.
//!
//! `PROXYTHINKER_IMAGES` chooses: `auto` (the default; see [`Graphics::detect`]), `query`,
//! `kitty`, `sixel`, `iterm2` or `halfblocks`.

use std::sync::Arc;

use image::DynamicImage;
use ratatui::layout::Rect;
use ratatui::Frame;
use ratatui_image::picker::{Picker, ProtocolType};
use ratatui_image::protocol::StatefulProtocol;
use ratatui_image::StatefulImage;

use crate::processor::SourceImage;

/// A graphics protocol and the picture encoded for it.
pub struct Graphics {
    picker: Picker,
    /// The picture last drawn (the decoded image the thumbnail was made from, shared with it)
    /// and its encoding.
    shown: Option<(Arc<DynamicImage>, StatefulProtocol)>,
}

impl Graphics {
    /// The protocol to draw with, from `PROXYTHINKER_IMAGES` (`auto`, the default; `query`;
    /// `kitty`, `sixel`, `iterm2`; `halfblocks`); `None` for half-blocks. Call it after the
    /// terminal entered the alternate screen and before reading events.
    ///
    /// `auto` asks the terminal only where its environment says it is one that answers
    /// (kitty, WezTerm, iTerm2, Ghostty, Konsole, foot, mlterm) and not inside tmux: the
    /// question is answered on standard input, and a terminal that never answers would leave
    /// the reader of that answer waiting and taking keystrokes meant for the UI.
    pub fn detect() -> Option<Graphics> {
        let choice = std::env::var("PROXYTHINKER_IMAGES").unwrap_or_default().to_ascii_lowercase();
        let forced = |protocol| {
            let mut picker = Picker::halfblocks();
            picker.set_protocol_type(protocol);
            Graphics::with_picker(picker)
        };
        match choice.as_str() {
            "halfblocks" | "off" | "none" => None,
            "kitty" => forced(ProtocolType::Kitty),
            "sixel" => forced(ProtocolType::Sixel),
            "iterm2" | "iterm" => forced(ProtocolType::Iterm2),
            "query" => Graphics::query(),
            _ if terminal_answers_graphics_queries() => Graphics::query(),
            _ => None,
        }
    }

    fn query() -> Option<Graphics> {
        match Picker::from_query_stdio() {
            Ok(picker) => Graphics::with_picker(picker),
            Err(e) => {
                tracing::info!("no graphics protocol ({e}); drawing pictures with half-blocks");
                None
            }
        }
    }

    /// Uses `picker` unless it only offers half-blocks (drawn by `view::media` instead).
    pub fn with_picker(picker: Picker) -> Option<Graphics> {
        tracing::info!("terminal graphics: {:?}", picker.protocol_type());
        (picker.protocol_type() != ProtocolType::Halfblocks).then_some(Graphics { picker, shown: None })
    }

    /// Makes `source` the picture to draw; it is encoded once, when it first differs from the
    /// last one (the same decoded image, not a file read again).
    pub fn prepare(&mut self, source: &SourceImage) {
        if self.shown.as_ref().is_none_or(|(shown, _)| !Arc::ptr_eq(shown, &source.image)) {
            let protocol = self.picker.new_resize_protocol(source.image.as_ref().clone());
            self.shown = Some((Arc::clone(&source.image), protocol));
        }
    }

    /// Draws the prepared picture into `area`, fitted to it.
    pub fn draw(&mut self, frame: &mut Frame, area: Rect) {
        if let Some((_, protocol)) = &mut self.shown {
            frame.render_stateful_widget(StatefulImage::default(), area, protocol);
        }
    }
}

/// Whether the environment names a terminal known to answer graphics queries, outside tmux.
fn terminal_answers_graphics_queries() -> bool {
    let var = |k: &str| std::env::var(k).unwrap_or_default().to_ascii_lowercase();
    if std::env::var_os("TMUX").is_some() || var("TERM").starts_with("screen") || var("TERM").starts_with("tmux") {
        return false;
    }
    let (term, program) = (var("TERM"), var("TERM_PROGRAM"));
    std::env::var_os("KITTY_WINDOW_ID").is_some()
        || std::env::var_os("KONSOLE_VERSION").is_some()
        || std::env::var_os("WEZTERM_EXECUTABLE").is_some()
        || ["kitty", "wezterm", "foot", "mlterm", "ghostty"].iter().any(|t| term.contains(t))
        || ["iterm.app", "wezterm", "ghostty"].iter().any(|p| program == *p)
}
