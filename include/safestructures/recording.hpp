// A recording's commit (docs/format.md section 9): its header rewritten in place within the room the file reserves,
// crash-safe through a journal at the end of the file, which readers prefer while it is there.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace safestructures {

// A commit in progress, as the end of the file holds it: the new header text (N bytes, as the file's prefix says)
// and the size of the data buffer it describes.
struct RecordingJournal {
  std::string header_text;
  std::uint64_t data_size = 0;
};

// The journal ending the file at `path`, read with pread (never through a mapping, which the writer may cut short),
// when the file ends in a whole, intact one for a header of `header_size` bytes (at most `max_header_size`); nullopt
// otherwise, or when the file cannot be read.
std::optional<RecordingJournal> read_recording_journal(const std::filesystem::path& path, std::uint64_t header_size,
                                                       std::uint64_t max_header_size);

// The same, from a file open as `fd`.
std::optional<RecordingJournal> read_recording_journal(int fd, std::uint64_t header_size, std::uint64_t max_header_size);

// Completes the commit a killed writer left, when the recording open as `fd` (for writing) ends in a whole journal:
// its header is written in place and the journal cut off. Returns whether there was one. A kill during this leaves the
// same journal to complete again.
bool finish_recording_commit(int fd, std::uint64_t header_size, bool fsync);

// Commits the header `header_text`, padded with spaces to `room` bytes (the N of the file's prefix), of the recording
// open as `fd`, whose data buffer now holds `data_size` bytes (all written, the file ending there): the journal is
// appended after the data, then the header is written in place, then the file is cut back to its data. A process
// killed at any point leaves either the old header whole (and no whole journal), or a whole journal, which readers
// use. With `fsync`, the data, the journal and the header each reach the disk before the next step, so the same holds
// after a power loss. The padding is written in pieces, never built in memory.
void commit_recording_header(int fd, std::string_view header_text, std::uint64_t room, std::uint64_t data_size, bool fsync);

}  // namespace safestructures
