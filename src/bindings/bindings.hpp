// Declarations shared by the binding translation units: error translation and array access.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>

#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "load_context.hpp"
#include "safestructures/checksum.hpp"
#include "safestructures/error.hpp"
#include "safestructures/reader.hpp"
#include "safestructures/schema.hpp"
#include "safestructures/tree_reader.hpp"
#include "safestructures/tree_writer.hpp"
#include "safestructures/writer.hpp"

namespace safestructures::bindings {

namespace nb = nanobind;

// A core error caused by what the caller asked to write (a bad name, a bad metadata key), translated to
// InvalidArgumentError rather than to InvalidFileError.
class ArgumentError : public Error {
 public:
  explicit ArgumentError(const Error& e) : Error(e) {}
  ArgumentError(ErrorCode code, std::string message) : Error(code, std::move(message)) {}
};

// Runs `call`, translating a core error other than an I/O one into ArgumentError: what fails there (a bad name, a
// header over the limit) is what the caller asked to write, not a file.
template <class Call>
decltype(auto) as_argument_error(Call&& call) {
  try {
    return call();
  } catch (const Error& e) {
    if (e.code() == ErrorCode::Io) throw;
    throw ArgumentError(e);
  }
}

// Runs `call` on the file at `where`, adding its path to a core error's message (an I/O error names it already).
template <class Call>
decltype(auto) naming_file(const std::string& where, Call&& call) {
  try {
    return call();
  } catch (const Error& e) {
    if (e.code() == ErrorCode::Io) throw;
    raise(e.code(), where + ": " + e.what());
  }
}

// Pauses the cyclic garbage collector for a walk, restoring its state whatever happens. Walks create objects by the
// thousand (a load its containers, a save the adapters' entries, kept alive until the file is written), none forming
// garbage cycles that need collecting mid-walk; the collector scanning them over and over cost more than the walk
// itself (a third of a 10,000-tensor save), as unpicklers also find.
struct GcPause {
  int was_enabled = PyGC_Disable();
  ~GcPause() {
    if (was_enabled) PyGC_Enable();
  }
};

// Installs the one translator of core errors into the exception classes of safestructures._errors.
void register_error_translator();

// A class of safestructures._errors by name (the module is imported on first use).
nb::object error_class(const char* name);
// Sets the Python error cls(message) with its `code` (an ErrorCode's name).
void set_error(nb::handle cls, const std::string& message, nb::handle code);

// str(obj) as UTF-8 for a message, whatever it holds: lone surrogates escaped (\ud800), never failing, cut to a few
// thousand bytes. Text from a file reaches messages through here (a str's UTF-8 form may not exist).
std::string py_text(nb::handle obj);
// A Python str of UTF-8 text that may be invalid (a message quoting bytes from a file): bad bytes escaped.
nb::str python_text(const std::string& text);
// A Python str of valid UTF-8 text (a name from a parsed header or schema, a name of the format's).
inline nb::str py_str(std::string_view text) { return nb::str(text.data(), text.size()); }

// Whether `obj` is exactly a numpy array (its type's name: numpy is never imported here).
inline bool is_ndarray(nb::handle obj) { return std::string_view(Py_TYPE(obj.ptr())->tp_name) == "numpy.ndarray"; }

// One tensor to write from (name, safetensors dtype name, shape, object with __array_interface__), without copying
// its data; raises InvalidArgumentError naming the tensor on a bad entry.
WriteTensor make_write_tensor(nb::handle name, nb::handle dtype, nb::handle shape, nb::handle array);

// The same for a list of (name, dtype, shape, array) entries; the caller keeps the arrays alive.
std::vector<WriteTensor> make_write_tensors(nb::handle entries);

// Converts {str: str} into core metadata; None gives none.
std::optional<Metadata> make_metadata(nb::handle metadata);

// Saving: what the walk wrote, and what keeps the memory its tape and tensors view alive.
struct SaveResult {
  WrittenTree tree;
  std::vector<nb::object> keep_alive;
};

// Walks `data` into a schema tape and tensors. Raises UnsupportedTypeError naming the type and the path,
// InvalidArgumentError for nesting deeper than `max_depth`. `context` is the per-save state of the framework adapters
// (e.g. which storages were already written), passed to array_entry.
SaveResult walk_data(nb::handle data, std::uint32_t max_depth, nb::handle context);
// The same for a record of a recording, its reference ids after `last_id` (TreeWriter::write_as_record).
SaveResult walk_record(nb::handle data, std::uint32_t max_depth, nb::handle context, std::uint32_t last_id);

// Walks `data` (into `walked`, which keeps what the plan's tensors view alive) and lays out its file: a save's first
// half, before any byte is written.
StructuredLayout plan_save(nb::handle data, nb::handle metadata, std::uint32_t max_depth, std::uint64_t max_header_size,
                           nb::handle context, bool checksums, SaveResult& walked);

// A file (or a caller's buffer) tensors are read from, and the Python object arrays view to keep its bytes alive.
struct Shard {
  Reader reader;
  nb::object buffer;
  // Read by the first verified load: the file's checksums (nullopt inside when it has none), its header checked.
  mutable std::optional<std::optional<Checksums>> checksums;
};

// Where a structure's tensors live: the one file it was saved to, or each file of a sharded save.
struct TensorSource {
  struct Found {
    const TensorInfo* info = nullptr;
    const Shard* shard = nullptr;
  };
  std::vector<Shard> shards;
  // Shards over buffers filled on demand (a remote file, a file object): called with [(shard, begin, end)] to fill
  // those bytes of the shards' buffers before they are read. None for mapped files and whole buffers.
  nb::object fetch;
  // Has `fetch` fill the bytes of a tensor found here (nothing for mapped files).
  void fetch_bytes(const Found& found) const;
  // The tensor `name` in whichever shard holds it (names are unique across shards; see check_unique_names).
  Found find(std::string_view name) const;
  // Raises TensorMismatch when two shards hold a tensor of the same name, which would make the schema ambiguous.
  void check_unique_names() const;
  // A verified load: every shard's header against its checksums, then each tensor found as it is built (the
  // checksums of docs/format.md section 8; files without them are not checked). Raise ChecksumMismatch or
  // ChecksumsInvalid.
  void verify_headers() const;
  void verify(const Found& found) const;
};

// The numpy array numpy.frombuffer(buffer, dtype, count, offset).reshape(shape) gives for `nbytes` bytes of `buffer` at
// `offset` (`dtype` a numpy dtype of `itemsize` bytes), with the same base, flags and shape, made through numpy's C
// API (numpy_view.cpp); an invalid object, no error set, where that way cannot make it (frombuffer's way then says why).
nb::object numpy_view(nb::handle buffer, nb::handle dtype, std::uint64_t itemsize, const std::vector<std::uint64_t>& shape,
                      std::uint64_t offset, std::uint64_t nbytes);

// A header's metadata as {str: str} (None when the file has none); with `user_only`, without the reserved keys.
nb::object metadata_to_python(const Header& header, bool user_only);
// A tensor's shape as a tuple of ints.
nb::tuple shape_tuple(const std::vector<std::uint64_t>& shape);
// [(name, dtype, shape, offset from the start of the file, nbytes)] in header order.
nb::list tensor_table(const Header& header);

// Maps and validates a file with the GIL released; the buffer (a FileBuffer) exposes the mapping to numpy.
Shard open_mapped(const std::filesystem::path& path, std::uint64_t max_header_size, Access access = Access::Whole);

struct LoadOptions {
  std::uint32_t max_depth = default_max_depth;
  std::uint64_t max_nodes = default_max_nodes;
  // Per-load state of the framework adapters (target framework, device, tensors built so far), passed to make_tensor.
  LoadContext context;
  // Check the header and each tensor built against the checksums saved with them (TensorSource::verify).
  bool verify = false;
};

// Builds the Python object a structured file (a source of one shard) holds; an invalid object for a file with no schema.
nb::object build_data(const TensorSource& file, const LoadOptions& options);

// Builds the object at `node` of a tree. With `partial`, the node may be any part of the tree: objects it refers to
// outside itself (shared objects, the storage of a view) are built on the way, as far as it needs them.
nb::object build_node(const TreeReader& tree, std::size_t node, const TensorSource& source, const LoadOptions& options, bool partial);

// Builds the objects at several nodes with one partial loader: what they share, or refer to elsewhere,
// is built once for all of them, so a walk building many parts stays linear in the file. `built` counts the nodes
// built so far, so that a caller told of an error knows which node raised it.
// With `keys`, the nodes are the keys of one mapping, hashed and checked as a whole load checks them.
nb::list build_nodes(const TreeReader& tree, const std::vector<std::size_t>& nodes, const TensorSource& source, const LoadOptions& options,
                     bool keys, std::size_t& built);

// Writes the tensors of a walked tree (its schema `document`) as shards under temporary names in `directory`, the GIL
// released while writing: (schema document, [temporary path of each shard], [(tensor, shard number)], total tensor bytes, [digest of each
// shard's checksums entry, or None]). `progress` as progress_reporter takes it, over the tensor bytes of all shards.
nb::tuple write_sharded(const std::vector<WriteTensor>& tensors, const std::string& document, const std::filesystem::path& directory,
                        const std::string& prefix, const std::string& save_id, std::uint64_t max_shard_size, bool fsync, bool checksums,
                        nb::handle progress);

// The WriteOptions::progress of a write of `total` tensor bytes that calls `progress(done, total)` (None: no progress,
// an empty function) at the start, every 1/200 of the total or so, and at the end. Make it before releasing the GIL and
// keep it until the GIL is taken back: its last copy lets go of the callable.
std::function<void(std::uint64_t)> progress_reporter(nb::handle progress, std::uint64_t total);

// Registers safestructures._core.SaveSnapshot and the functions that take and write one (background saves).
void register_save_snapshot(nb::module_& m);

// Registers safestructures._core.load_where, the function a load's context holds as "where" (see Loader), and
// safestructures._core.HashRuns, the cap on keys of one hash value (for loaders written in Python).
void register_load_where(nb::module_& m);

// Registers the commits of safestructures.Recorder (commit_recording, finish_recording_commit).
void register_recording(nb::module_& m);

// Registers safestructures._core.LazyFile, the lazily read file behind safestructures.open.
void register_lazy_file(nb::module_& m);

}  // namespace safestructures::bindings
