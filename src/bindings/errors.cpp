// The one place where core errors become Python exceptions (the classes live in safestructures._errors).
#include <Python.h>

#include "bindings.hpp"

namespace safestructures::bindings {

nb::object error_class(const char* name) {
  // Imported once and deliberately never released: a static nb::object would be destroyed after the interpreter.
  static PyObject* errors = nb::module_::import_("safestructures._errors").release().ptr();
  return nb::handle(errors).attr(name);
}

std::string py_text(nb::handle obj) {
  constexpr std::size_t max_bytes = 4000;
  nb::object text = nb::steal(PyObject_Str(obj.ptr()));
  nb::object bytes =
      text.is_valid() ? nb::steal(PyUnicode_AsEncodedString(text.ptr(), "utf-8", "backslashreplace")) : nb::object();
  if (!bytes.is_valid()) {
    PyErr_Clear();
    return std::string("<a ") + Py_TYPE(obj.ptr())->tp_name + " that cannot be shown>";
  }
  std::string out(PyBytes_AS_STRING(bytes.ptr()), static_cast<std::size_t>(PyBytes_GET_SIZE(bytes.ptr())));
  if (out.size() > max_bytes) {
    std::size_t cut = max_bytes;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 sequence
    out.resize(cut);
    out += "...";
  }
  return out;
}

nb::str python_text(const std::string& text) {
  PyObject* out = PyUnicode_DecodeUTF8(text.data(), static_cast<Py_ssize_t>(text.size()), "backslashreplace");
  if (out == nullptr) throw nb::python_error();
  return nb::steal<nb::str>(out);
}

void set_error(nb::handle cls, const std::string& message, nb::handle code) {
  nb::object instance = cls(python_text(message));
  instance.attr("code") = code;
  PyErr_SetObject(cls.ptr(), instance.ptr());
}

namespace {

void set_error(const char* class_name, const Error& e) {
  bindings::set_error(error_class(class_name), e.what(), py_str(error_code_name(e.code())));
}

void set_os_error(const Error& e) {
  // OSError(errno, text, filename) becomes FileNotFoundError, IsADirectoryError... as users expect; the path is left
  // out of the text since Python prints the filename after it.
  std::string text = e.what();
  const std::string quoted_path = " '" + e.path() + "'";
  if (const auto at = text.find(quoted_path); at != std::string::npos) text.erase(at, quoted_path.size());
  nb::object args = nb::make_tuple(e.sys_errno(), text, e.path());
  PyErr_SetObject(PyExc_OSError, args.ptr());
}

}  // namespace

void register_error_translator() {
  // The error module is imported on the first error, not here: the stub generator imports this module alone.
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const ArgumentError& e) {
      set_error("InvalidArgumentError", e);
    } catch (const Error& e) {
      if (e.code() == ErrorCode::Io) {
        set_os_error(e);
      } else if (e.code() == ErrorCode::ChecksumMismatch || e.code() == ErrorCode::ChecksumsInvalid) {
        set_error("IntegrityError", e);
      } else {
        set_error("InvalidFileError", e);
      }
    }
  });
}

}  // namespace safestructures::bindings
