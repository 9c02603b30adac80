// A recording's commit (docs/format.md section 9): its header rewritten in place within the room the file reserves,
// crash-safe through a journal at the end of the file, which readers prefer while it is there.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "safestructures/writer.hpp"

namespace safestructures {

// A commit in progress, as the end of the file holds it: the new header text (N bytes, as the file's prefix says)
// and the size of the data buffer it describes.
struct RecordingJournal {
  std::string header_text;
  std::uint64_t data_size = 0;
  std::uint64_t at = 0;  // where it starts in the file: 8 + N_j + data_size
};

// The journal ending the file at `path`, read with pread (never through a mapping, which the writer may cut short),
// when the file ends in a whole, intact one whose room N_j (at most `max_header_size`) makes the file's size exactly
// 8 + N_j + data + N_j + 32 (section 9; N_j may differ from the prefix's N while a room grows); nullopt otherwise, or
// when the file cannot be read. Its data starts at 8 + N_j.
std::optional<RecordingJournal> read_recording_journal(const std::filesystem::path& path, std::uint64_t max_header_size);

// The same, from a file open as `fd`.
std::optional<RecordingJournal> read_recording_journal(int fd, std::uint64_t max_header_size);

// The journal that readers take over the header in place `in_place` (nullptr where that does not parse) of the file at
// `path`: the one read_recording_journal reads, but none where that header does not mark a recording, nor where the
// journal would start before the end of the data that header describes (a record's own bytes ending the file as a
// journal does are the record's, section 9).
std::optional<RecordingJournal> journal_over(const std::filesystem::path& path, const Header* in_place, std::uint64_t max_header_size);
std::optional<RecordingJournal> journal_over(int fd, const Header* in_place, std::uint64_t max_header_size);

// Completes the commit a killed writer left, when the recording open as `fd` (for writing) ends in a whole journal
// that readers take (journal_over, over the header in place read back) and whose header parses: its room (in the
// prefix) and header are written in place and the journal cut off. Returns whether there was one. A kill during this
// leaves the same journal to complete again.
bool finish_recording_commit(int fd, bool fsync);

// Commits the header `header_text`, padded with spaces to `room` bytes, of the recording open as `fd`, whose data
// buffer now holds `data_size` bytes (all written, the file ending at 8 + room + data_size): the journal is appended
// after the data, then the header is written in place and `room` as the file's prefix (a room grown into the data's
// leading padding, section 9, moves the data's start by as much as the padding shrinks), then the file is cut back to
// its data. A process
// killed at any point leaves either the old header whole (and no whole journal), or a whole journal, which readers
// use. With `fsync`, the data, the journal and the header each reach the disk before the next step, so the same holds
// after a power loss. The padding is written in pieces, never built in memory.
void commit_recording_header(int fd, std::string_view header_text, std::uint64_t room, std::uint64_t data_size, bool fsync);

// Takes the shared lock that readers of a recording hold for as long as they map it (an OFD read lock on one byte far
// past any file's end), waiting (at most 30 seconds, then an Io error naming `name`) while a writer grows the room
// in place. Returns false, nothing held, where the file system has no such locks: a writer cannot lock it either, and
// never grows in place there.
bool hold_recording_read_lock(int fd, const std::string& name);

// Commits `header_text` into a room grown from `room` to `new_room` bytes without moving the data where the file
// system can insert blocks (fallocate's FALLOC_FL_INSERT_RANGE; section 9's growth): the journal for the new room is
// appended, blocks inserted before the data, the header and prefix written in place, the journal cut off. The data
// buffer of `data_size` bytes becomes one of `new_data_size` (at least as large): the blocks inserted,
// new_room + new_data_size - room - data_size bytes of zeros, make the new room and lengthen the data's leading
// padding. Returns
// false, the file as it was, where the insert cannot be done (with `fsync`: an insert is not atomic across a power
// loss; the data not starting on a block of the file system,
// the growth not whole blocks, a file system without it, or a reader holding the file mapped, which the insert
// would shift under it): the caller then rewrites the file. Safe against a kill at any moment.
bool grow_recording_header(int fd, std::string_view header_text, std::uint64_t room, std::uint64_t new_room,
                           std::uint64_t data_size, std::uint64_t new_data_size, bool fsync);

// Writes the data buffer `layout` lays out for `tensors` (their bytes in data order, without the file's header) at
// `offset` of the file open as `fd`: a record appended to a recording, its tensors streamed from their memory (large
// ones uncopied, small ones gathered into chunks of 1 MiB). Raises Io on a failed write, the file then holding a
// part of the bytes (its writer cuts it back), and InvalidArgument, before the last 32 bytes are written, where the
// file would then end in a whole journal (of any room): readers would take the record's bytes for the header.
void write_recording_data(int fd, std::uint64_t offset, const Layout& layout, std::span<const WriteTensor> tensors);

}  // namespace safestructures
