#pragma once

// Reader and writer of the safetensors format (https://github.com/huggingface/safetensors):
// an 8-byte little-endian header length N, N bytes of UTF-8 JSON
// {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
// then the data buffer, which the offsets are relative to.
//
// The reader memory-maps the file and validates the whole header on open, so a hostile file is
// refused with a studio::Error naming the file and the tensor or field before any tensor is
// made. Tensors are read without copying when possible: they keep the mapping alive by
// themselves and stay valid after the SafeTensorsFile is gone.

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include <QString>
#include <QStringList>
#include <QtGlobal>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

namespace studio::io {

namespace detail {
struct MappedFile; // the open, memory-mapped file; shared by a SafeTensorsFile and its tensors
} // namespace detail

// One tensor entry of the header, validated.
struct TensorInfo
{
    QString name;
    c10::ScalarType dtype = c10::ScalarType::Float;
    std::vector<int64_t> shape; // empty for a 0-d scalar
    int64_t numel = 1;
    qint64 begin = 0; // byte range [begin, end) relative to the start of the data buffer
    qint64 end = 0;

    qint64 byteSize() const { return end - begin; }
};

class SafeTensorsFile
{
public:
    // Maps and validates `path`. Throws studio::Error naming the file (and the tensor or field)
    // when it cannot be read or is not a well-formed safetensors file.
    static SafeTensorsFile open(const QString& path);

    QString path() const { return m_path; }

    // Tensor names in data order: ascending data_offsets, which is the order a writer laid them
    // out in (and the header order of files written by Python). Empty tensors sharing an offset
    // are ordered by name.
    QStringList names() const;

    bool contains(const QString& name) const;

    // Throws studio::Error when the file has no tensor `name`.
    TensorInfo info(const QString& name) const;

    // The tensor `name` on the CPU. Without `convertTo` (or when it equals the stored dtype) and
    // when the data is aligned for its element type, the tensor points into the mapping (no copy;
    // writes to it are private copy-on-write and never reach the file). Otherwise an owned
    // copy, converted with at::Tensor::to (F16/BF16 -> F32 etc.). Throws studio::Error for an
    // unknown name or invalid BOOL bytes.
    at::Tensor tensor(const QString& name,
                      std::optional<c10::ScalarType> convertTo = std::nullopt) const;

    // The "__metadata__" entries; empty when the file has none.
    std::map<QString, QString> metadata() const { return m_metadata; }

private:
    SafeTensorsFile() = default;

    const TensorInfo& entry(const QString& name) const;
    at::Tensor storedTensor(const TensorInfo& entry) const;

    QString m_path;
    std::shared_ptr<const detail::MappedFile> m_mapping;
    qint64 m_dataStart = 0;            // offset of the data buffer in the file (8 + header length)
    std::vector<TensorInfo> m_tensors; // in data order
    std::map<QString, std::size_t> m_indexByName;
    std::map<QString, QString> m_metadata;
};

// Writes `tensors` in the given order (contiguous, no padding between them, as the format's
// reference implementation requires) after a header padded with spaces to a multiple of 8.
// Tensors are copied to contiguous CPU memory as needed. Supported dtypes: F64, F32, F16, BF16,
// I64, I32, I16, I8, U8, BOOL. The write is atomic. Throws studio::Error naming the file and
// the tensor for a duplicate or reserved name, an undefined tensor or an unsupported dtype.
void writeSafeTensors(const QString& path,
                      const std::vector<std::pair<QString, at::Tensor>>& tensors,
                      const std::map<QString, QString>& metadata = {});

} // namespace studio::io
