// Example: build nested data with tensors in C++ and save it; Python reads it with safestructures.load_file(FILE).
//   save_tree FILE
#include <safestructures/value.hpp>

#include <cmath>
#include <cstdint>
#include <iostream>
#include <vector>

namespace ss = safestructures;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: save_tree FILE\n";
    return 2;
  }
  // A tensor that owns its elements (float: F32); one over memory the program keeps (it must outlive the save).
  ss::Value weight = ss::Value::tensor(std::vector<float>{0.5f, -1.0f, 2.0f, 4.0f, 8.0f, 16.0f}, {2, 3});
  const std::vector<std::int64_t> steps{1, 2, 3};
  ss::Value bias = ss::Value::tensor(ss::Dtype::I64, {3}, std::as_bytes(std::span(steps)));

  ss::Value layer = ss::Value::dict();
  layer.set("weight", weight).set("bias", bias);

  ss::Value root = ss::Value::dict();
  root.set("model", ss::Value::dict().set("layers", ss::Value::list({layer})).set("tied", weight))  // stored once
      .set("step", 10)
      .set("lr", 0.001)
      .set("loss", std::nan(""))
      .set("name", "run-1")
      .set("done", true)
      .set("note", nullptr)
      .set("betas", ss::Value::tuple({0.9, 0.999}))
      .set("big", ss::Value::big_int("0x1" + std::string(20, '0')))
      .set(7, "an int key");  // a key that is not a string: Python gets {..., 7: "an int key"}

  try {
    ss::save_file(argv[1], root, {{"written_by", "save_tree"}});
  } catch (const ss::Error& e) {
    std::cerr << "error (" << ss::error_code_name(e.code()) << "): " << e.what() << "\n";
    return 1;
  }
  std::cout << "saved " << argv[1] << "\n";
  return 0;
}
