//! Screen geometry shared by the view (where to draw) and by update (what a mouse click hit, how
//! far a pane scrolls): the areas of the layout for a terminal size, and how a pane wraps its
//! tokens into lines. Pure functions of sizes and token widths.

use ratatui::layout::{Constraint, Layout, Rect};

use super::app::{App, Pane, TokenCell};

/// The smallest terminal the layout fits in.
pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;

/// Where each part of the UI goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Areas {
    pub header: Rect,
    /// Image and question.
    pub media: Rect,
    /// The three stream panes, borders included.
    pub panes: [Rect; 3],
    pub inspector: Rect,
    pub plot: Rect,
    pub status: Rect,
    pub hints: Rect,
}

/// The layout for a terminal of `screen` size, or `None` when it is too small.
pub fn areas(screen: Rect) -> Option<Areas> {
    if screen.width < MIN_WIDTH || screen.height < MIN_HEIGHT {
        return None;
    }
    let h = screen.height;
    // Tall terminals get a real picture and the full top-k list; short ones keep the streams.
    let media = if h >= 40 { 8 } else if h >= 30 { 4 } else { 2 };
    let bottom = if h >= 44 { 16 } else if h >= 30 { 12 } else { 10 };
    let [header, media, streams, bottom, status, hints] = Layout::vertical([
        // Models; settings and state; the final answers and whether they agree.
        Constraint::Length(3),
        Constraint::Length(media),
        Constraint::Min(5),
        Constraint::Length(bottom),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(screen);
    let panes = Layout::horizontal([Constraint::Ratio(1, 3); 3]).areas(streams);
    let [inspector, plot] = Layout::horizontal([Constraint::Percentage(64), Constraint::Percentage(36)]).areas(bottom);
    Some(Areas { header, media, panes, inspector, plot, status, hints })
}

/// The inside of a bordered pane.
pub fn inner(area: Rect) -> Rect {
    Rect { x: area.x + 1, y: area.y + 1, width: area.width.saturating_sub(2), height: area.height.saturating_sub(2) }
}

/// Wraps tokens into lines of at most `width` cells: the index of the first token of each line.
/// A token starts a new line when it does not fit, or after a token that held a line break.
pub fn wrap(cells: &[TokenCell], width: u16) -> Vec<usize> {
    let mut starts = Vec::with_capacity(cells.len() / 8 + 1);
    if cells.is_empty() {
        return starts;
    }
    starts.push(0);
    let mut x = 0u16;
    let mut break_next = false;
    for (i, c) in cells.iter().enumerate() {
        if i > 0 && (break_next || x.saturating_add(c.width) > width) {
            starts.push(i);
            x = 0;
        }
        x = x.saturating_add(c.width);
        break_next = c.newline;
    }
    starts
}

/// The line holding token `i`.
pub fn line_of(starts: &[usize], i: usize) -> usize {
    starts.partition_point(|&s| s <= i).saturating_sub(1)
}

/// The tokens of line `line`.
pub fn line_range(starts: &[usize], line: usize, len: usize) -> std::ops::Range<usize> {
    let start = starts.get(line).copied().unwrap_or(len);
    let end = starts.get(line + 1).copied().unwrap_or(len);
    start..end
}

/// The first visible line of a pane of `height` lines holding `lines` lines.
pub fn top_line(scroll: Option<usize>, lines: usize, height: usize) -> usize {
    let last_top = lines.saturating_sub(height);
    scroll.map_or(last_top, |t| t.min(last_top))
}

/// A pane's wrapped lines and first visible line, as the view draws them now.
pub struct PaneLines {
    pub area: Rect,
    pub starts: Vec<usize>,
    pub top: usize,
}

/// Lays out one pane of `app` for the current screen (None when the screen is too small).
pub fn pane_lines(app: &App, pane: Pane) -> Option<PaneLines> {
    let a = areas(Rect::new(0, 0, app.screen.0, app.screen.1))?;
    Some(pane_lines_in(app, pane, inner(a.panes[pane.index()])))
}

/// Lays out one pane of `app` inside `area` (the pane's inside).
pub fn pane_lines_in(app: &App, pane: Pane, area: Rect) -> PaneLines {
    let starts = wrap(app.shown_cells(pane), area.width.max(1));
    let top = top_line(app.scroll[pane.index()], starts.len(), area.height as usize);
    PaneLines { area, starts, top }
}

/// The token at column `x` of line `line`, or the line's last token when `x` is past its end.
pub fn token_at(cells: &[TokenCell], starts: &[usize], line: usize, x: u16) -> Option<usize> {
    let range = line_range(starts, line, cells.len());
    if range.is_empty() {
        return None;
    }
    let mut at = 0u16;
    for i in range.clone() {
        at = at.saturating_add(cells[i].width);
        if x < at {
            return Some(i);
        }
    }
    Some(range.end - 1)
}

/// The column where token `i` starts on its line.
pub fn column_of(cells: &[TokenCell], starts: &[usize], i: usize) -> u16 {
    let line = line_of(starts, i);
    let range = line_range(starts, line, cells.len());
    cells[range.start..i.min(range.end)].iter().map(|c| c.width).sum()
}

/// Which pane and token a click at (x, y) lands on.
pub fn hit(app: &App, x: u16, y: u16) -> Option<(Pane, Option<usize>)> {
    for pane in Pane::ALL {
        let lines = pane_lines(app, pane)?;
        let a = lines.area;
        if x >= a.x && x < a.x + a.width && y >= a.y && y < a.y + a.height {
            let line = lines.top + (y - a.y) as usize;
            if line >= lines.starts.len() {
                return Some((pane, None));
            }
            return Some((pane, token_at(app.shown_cells(pane), &lines.starts, line, x - a.x)));
        }
    }
    None
}
