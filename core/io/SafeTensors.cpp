#include "core/io/SafeTensors.h"

#include "core/Error.h"
#include "core/Logging.h"
#include "core/io/AtomicFile.h"

#include <ATen/ATen.h>

#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QJsonValue>
#include <QtEndian>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <tuple>

// The format is little-endian and tensors are handed out as views of the raw bytes.
#if Q_BYTE_ORDER != Q_LITTLE_ENDIAN
#error "SafeTensors.cpp assumes a little-endian host"
#endif

namespace studio::io {

namespace detail {

// Owns the QFile and its mapping. Tensors read without a copy hold a shared_ptr to it, so the
// mapping lives as long as the last of them. QFile never processes events, so the last owner
// may release it from any thread.
struct MappedFile
{
    explicit MappedFile(const QString& path) : file(path) {}

    ~MappedFile()
    {
        if (data) {
            file.unmap(data);
        }
    }

    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    QFile file;
    uchar* data = nullptr;
    qint64 size = 0;
};

} // namespace detail

namespace {

constexpr qint64 kLengthFieldSize = 8;
constexpr quint64 kMaxHeaderSize = 100 * 1024 * 1024;
// Integers above 2^53 do not survive QJsonValue's double; no real offset or dimension gets near.
constexpr double kMaxExactInteger = 9007199254740992.0;
constexpr int kMaxNameInMessage = 120;
constexpr int kHeaderAlignment = 8;

struct DtypeName
{
    const char* name;
    c10::ScalarType type;
};

constexpr DtypeName kDtypes[] = {
    {"F64", c10::ScalarType::Double}, {"F32", c10::ScalarType::Float},
    {"F16", c10::ScalarType::Half},   {"BF16", c10::ScalarType::BFloat16},
    {"I64", c10::ScalarType::Long},   {"I32", c10::ScalarType::Int},
    {"I16", c10::ScalarType::Short},  {"I8", c10::ScalarType::Char},
    {"U8", c10::ScalarType::Byte},    {"BOOL", c10::ScalarType::Bool},
};

QString metadataKey()
{
    return QStringLiteral("__metadata__");
}

std::optional<c10::ScalarType> dtypeFromName(const QString& name)
{
    for (const DtypeName& dtype : kDtypes) {
        if (name == QLatin1String(dtype.name)) {
            return dtype.type;
        }
    }
    return std::nullopt;
}

const char* nameOfDtype(c10::ScalarType type)
{
    for (const DtypeName& dtype : kDtypes) {
        if (dtype.type == type) {
            return dtype.name;
        }
    }
    return nullptr;
}

QString supportedDtypes()
{
    QStringList names;
    for (const DtypeName& dtype : kDtypes) {
        names.append(QLatin1String(dtype.name));
    }
    return names.join(QStringLiteral(", "));
}

// Names come from the file: a hostile one could be megabytes long.
QString quoted(const QString& name)
{
    if (name.size() <= kMaxNameInMessage) {
        return QLatin1Char('\'') + name + QLatin1Char('\'');
    }
    return QLatin1Char('\'') + name.left(kMaxNameInMessage) + QStringLiteral("...'");
}

QString shapeText(const std::vector<int64_t>& shape)
{
    QStringList dims;
    for (int64_t dim : shape) {
        dims.append(QString::number(dim));
    }
    return QLatin1Char('[') + dims.join(QStringLiteral(", ")) + QLatin1Char(']');
}

[[noreturn]] void failFile(const QString& path, const QString& detail)
{
    throw Error(QStringLiteral("cannot read safetensors file '%1': %2")
                    .arg(QDir::toNativeSeparators(path), detail));
}

[[noreturn]] void failTensor(const QString& path, const QString& name, const QString& detail)
{
    failFile(path, QStringLiteral("tensor %1: %2").arg(quoted(name), detail));
}

// A non-negative integer that a double represents exactly, as JSON numbers reach us.
std::optional<int64_t> toCount(const QJsonValue& value)
{
    if (!value.isDouble()) {
        return std::nullopt;
    }
    const double number = value.toDouble();
    if (!std::isfinite(number) || number < 0 || number > kMaxExactInteger ||
        number != std::floor(number)) {
        return std::nullopt;
    }
    return static_cast<int64_t>(number);
}

std::shared_ptr<detail::MappedFile> mapFile(const QString& path)
{
    auto mapped = std::make_shared<detail::MappedFile>(path);
    if (!mapped->file.open(QIODevice::ReadOnly)) {
        failFile(path, mapped->file.errorString());
    }

    mapped->size = mapped->file.size();
    if (mapped->size < kLengthFieldSize) {
        failFile(path, QStringLiteral("the file is %1 bytes, shorter than the 8-byte header "
                                      "length (truncated or not a safetensors file)")
                           .arg(mapped->size));
    }

    // Private: writes to zero-copy tensors become copy-on-write pages instead of a crash on
    // read-only memory, and never reach the file. (Truncating the file on disk while it is
    // mapped still faults on access, as with any mapping.)
    mapped->data = mapped->file.map(0, mapped->size, QFileDevice::MapPrivateOption);
    if (!mapped->data) {
        failFile(path,
                 QStringLiteral("cannot map it into memory: %1").arg(mapped->file.errorString()));
    }
    return mapped;
}

qint64 readHeaderSize(const QString& path, const detail::MappedFile& mapped)
{
    const auto headerSize = qFromLittleEndian<quint64>(mapped.data);
    if (headerSize > kMaxHeaderSize) {
        failFile(path, QStringLiteral("the header length %1 is absurd (more than %2 bytes); "
                                      "not a safetensors file?")
                           .arg(headerSize)
                           .arg(kMaxHeaderSize));
    }

    const qint64 available = mapped.size - kLengthFieldSize;
    if (static_cast<qint64>(headerSize) > available) {
        failFile(path, QStringLiteral("the header length %1 is larger than the %2 bytes that "
                                      "follow it (truncated file?)")
                           .arg(headerSize)
                           .arg(available));
    }
    return static_cast<qint64>(headerSize);
}

QJsonObject parseHeader(const QString& path, const detail::MappedFile& mapped, qint64 headerSize)
{
    // A view of the mapping, not a copy; the size was checked against the file.
    const QByteArray json = QByteArray::fromRawData(
        reinterpret_cast<const char*>(mapped.data + kLengthFieldSize), headerSize);

    QJsonParseError error;
    const QJsonDocument document = QJsonDocument::fromJson(json, &error);
    if (error.error != QJsonParseError::NoError) {
        failFile(path, QStringLiteral("the header is not valid JSON (%1 at byte %2 of the "
                                      "header)")
                           .arg(error.errorString())
                           .arg(error.offset));
    }
    if (!document.isObject()) {
        failFile(path, QStringLiteral("the header is JSON but not an object"));
    }
    return document.object();
}

std::map<QString, QString> parseMetadata(const QString& path, const QJsonValue& value)
{
    if (!value.isObject()) {
        failFile(path, QStringLiteral("\"__metadata__\" is not an object"));
    }

    std::map<QString, QString> metadata;
    const QJsonObject object = value.toObject();
    for (auto it = object.begin(); it != object.end(); ++it) {
        if (!it.value().isString()) {
            failFile(path, QStringLiteral("\"__metadata__\" value of %1 is not a string")
                               .arg(quoted(it.key())));
        }
        metadata.emplace(it.key(), it.value().toString());
    }
    return metadata;
}

c10::ScalarType parseDtype(const QString& path, const QString& name, const QJsonObject& entry)
{
    const QJsonValue value = entry.value(QLatin1String("dtype"));
    if (value.isUndefined()) {
        failTensor(path, name, QStringLiteral("missing \"dtype\""));
    }
    if (!value.isString()) {
        failTensor(path, name, QStringLiteral("\"dtype\" is not a string"));
    }

    const std::optional<c10::ScalarType> dtype = dtypeFromName(value.toString());
    if (!dtype) {
        failTensor(path, name,
                   QStringLiteral("unknown dtype %1 (supported: %2)")
                       .arg(quoted(value.toString()), supportedDtypes()));
    }
    return *dtype;
}

void parseShape(const QString& path, const QJsonObject& entry, TensorInfo& info)
{
    const QJsonValue value = entry.value(QLatin1String("shape"));
    if (value.isUndefined()) {
        failTensor(path, info.name, QStringLiteral("missing \"shape\""));
    }
    if (!value.isArray()) {
        failTensor(path, info.name, QStringLiteral("\"shape\" is not an array"));
    }

    const QJsonArray dims = value.toArray();
    info.shape.reserve(static_cast<std::size_t>(dims.size())); // bounded by the header size
    info.numel = 1;
    for (qsizetype i = 0; i < dims.size(); ++i) {
        const std::optional<int64_t> dim = toCount(dims.at(i));
        if (!dim) {
            failTensor(
                path, info.name,
                QStringLiteral("\"shape\" dimension %1 is not an integer in [0, 2^53]").arg(i));
        }
        info.shape.push_back(*dim);
        if (__builtin_mul_overflow(info.numel, *dim, &info.numel)) {
            failTensor(path, info.name,
                       QStringLiteral("\"shape\" element count overflows (dimension %1)").arg(i));
        }
    }
}

void parseOffsets(const QString& path, const QJsonObject& entry, qint64 dataSize, TensorInfo& info)
{
    const QJsonValue value = entry.value(QLatin1String("data_offsets"));
    if (value.isUndefined()) {
        failTensor(path, info.name, QStringLiteral("missing \"data_offsets\""));
    }
    const QJsonArray offsets = value.toArray();
    if (!value.isArray() || offsets.size() != 2) {
        failTensor(path, info.name,
                   QStringLiteral("\"data_offsets\" is not an array of two integers"));
    }

    const std::optional<int64_t> begin = toCount(offsets.at(0));
    const std::optional<int64_t> end = toCount(offsets.at(1));
    if (!begin || !end) {
        failTensor(path, info.name,
                   QStringLiteral("\"data_offsets\" are not integers in [0, 2^53]"));
    }
    if (*begin > *end) {
        failTensor(
            path, info.name,
            QStringLiteral("\"data_offsets\" [%1, %2]: begin is after end").arg(*begin).arg(*end));
    }
    if (*end > dataSize) {
        failTensor(path, info.name,
                   QStringLiteral("\"data_offsets\" [%1, %2] lie outside the %3-byte data buffer "
                                  "(truncated file?)")
                       .arg(*begin)
                       .arg(*end)
                       .arg(dataSize));
    }
    info.begin = *begin;
    info.end = *end;
}

void checkByteCount(const QString& path, const TensorInfo& info)
{
    const auto elementSize = static_cast<int64_t>(c10::elementSize(info.dtype));
    int64_t expected = 0;
    if (__builtin_mul_overflow(info.numel, elementSize, &expected) || expected != info.byteSize()) {
        failTensor(path, info.name,
                   QStringLiteral("\"data_offsets\" span %1 bytes but shape %2 of %3 needs %4 x %5")
                       .arg(info.byteSize())
                       .arg(shapeText(info.shape), QLatin1String(nameOfDtype(info.dtype)))
                       .arg(info.numel)
                       .arg(elementSize));
    }
}

TensorInfo parseEntry(const QString& path, const QString& name, const QJsonValue& value,
                      qint64 dataSize)
{
    if (!value.isObject()) {
        failTensor(path, name, QStringLiteral("the entry is not an object"));
    }
    const QJsonObject entry = value.toObject();

    TensorInfo info;
    info.name = name;
    info.dtype = parseDtype(path, name, entry);
    parseShape(path, entry, info);
    parseOffsets(path, entry, dataSize, info);
    checkByteCount(path, info);
    return info;
}

// Expects `tensors` sorted by begin. Empty ranges overlap nothing.
void checkNoOverlap(const QString& path, const std::vector<TensorInfo>& tensors)
{
    const TensorInfo* furthest = nullptr; // the tensor reaching furthest into the buffer so far
    for (const TensorInfo& info : tensors) {
        if (info.byteSize() == 0) {
            continue;
        }
        if (furthest && info.begin < furthest->end) {
            failTensor(path, info.name,
                       QStringLiteral("\"data_offsets\" [%1, %2] overlap those of tensor %3 "
                                      "[%4, %5]")
                           .arg(QString::number(info.begin), QString::number(info.end),
                                quoted(furthest->name), QString::number(furthest->begin),
                                QString::number(furthest->end)));
        }
        if (!furthest || info.end > furthest->end) {
            furthest = &info;
        }
    }
}

void checkBoolBytes(const QString& path, const TensorInfo& info, const uchar* bytes)
{
    // Any other value is undefined behaviour for a C++ bool.
    const uchar* bad = std::find_if(bytes, bytes + info.byteSize(), [](uchar b) { return b > 1; });
    if (bad != bytes + info.byteSize()) {
        failTensor(
            path, info.name,
            QStringLiteral("BOOL data holds the byte %1 at element %2; only 0 and 1 are valid")
                .arg(*bad)
                .arg(bad - bytes));
    }
}

} // namespace

SafeTensorsFile SafeTensorsFile::open(const QString& path)
{
    SafeTensorsFile file;
    file.m_path = path;
    std::shared_ptr<detail::MappedFile> mapped = mapFile(path);

    const qint64 headerSize = readHeaderSize(path, *mapped);
    file.m_dataStart = kLengthFieldSize + headerSize;
    const qint64 dataSize = mapped->size - file.m_dataStart;
    const QJsonObject header = parseHeader(path, *mapped, headerSize);

    for (auto it = header.begin(); it != header.end(); ++it) {
        if (it.key() == metadataKey()) {
            file.m_metadata = parseMetadata(path, it.value());
        } else {
            file.m_tensors.push_back(parseEntry(path, it.key(), it.value(), dataSize));
        }
    }

    // QJsonObject forgets the header order; the data order is the one the writer chose.
    std::sort(file.m_tensors.begin(), file.m_tensors.end(),
              [](const TensorInfo& a, const TensorInfo& b) {
                  return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
              });
    checkNoOverlap(path, file.m_tensors);

    for (std::size_t i = 0; i < file.m_tensors.size(); ++i) {
        file.m_indexByName.emplace(file.m_tensors[i].name, i);
    }
    file.m_mapping = std::move(mapped);

    qCDebug(lcIo).noquote() << "opened" << path << "with" << file.m_tensors.size() << "tensors,"
                            << file.m_metadata.size() << "metadata entries";
    return file;
}

QStringList SafeTensorsFile::names() const
{
    QStringList names;
    names.reserve(static_cast<qsizetype>(m_tensors.size()));
    for (const TensorInfo& info : m_tensors) {
        names.append(info.name);
    }
    return names;
}

bool SafeTensorsFile::contains(const QString& name) const
{
    return m_indexByName.count(name) != 0;
}

TensorInfo SafeTensorsFile::info(const QString& name) const
{
    return entry(name);
}

const TensorInfo& SafeTensorsFile::entry(const QString& name) const
{
    const auto it = m_indexByName.find(name);
    if (it == m_indexByName.end()) {
        failTensor(m_path, name, QStringLiteral("no such tensor in the file"));
    }
    return m_tensors[it->second];
}

at::Tensor SafeTensorsFile::tensor(const QString& name,
                                   std::optional<c10::ScalarType> convertTo) const
{
    const TensorInfo& info = entry(name);
    const at::Tensor stored = storedTensor(info);

    if (convertTo && *convertTo != info.dtype) {
        return stored.to(*convertTo);
    }
    return stored;
}

at::Tensor SafeTensorsFile::storedTensor(const TensorInfo& info) const
{
    uchar* bytes = m_mapping->data + m_dataStart + info.begin;
    if (info.dtype == c10::ScalarType::Bool) {
        checkBoolBytes(m_path, info, bytes);
    }

    const auto options = at::TensorOptions().dtype(info.dtype).device(at::kCPU);
    if (info.numel == 0) {
        return at::empty(info.shape, options);
    }

    // The format does not align tensors; a misaligned view would be undefined behaviour.
    const auto elementSize = static_cast<quintptr>(c10::elementSize(info.dtype));
    if (reinterpret_cast<quintptr>(bytes) % elementSize != 0) {
        qCDebug(lcIo).noquote() << "copying misaligned tensor" << info.name << "of" << m_path;
        at::Tensor copy = at::empty(info.shape, options);
        std::memcpy(copy.data_ptr(), bytes, static_cast<std::size_t>(info.byteSize()));
        return copy;
    }

    // The deleter owns a reference to the mapping: it is unmapped after the last such tensor.
    std::shared_ptr<const detail::MappedFile> keepAlive = m_mapping;
    return at::from_blob(
        bytes, info.shape, [keepAlive](void*) {}, options);
}

namespace {

struct PreparedTensor
{
    QString name;
    at::Tensor data; // contiguous, on the CPU
    const char* dtype;
    qint64 begin;
    qint64 end;
};

[[noreturn]] void failWrite(const QString& path, const QString& name, const QString& detail)
{
    throw Error(QStringLiteral("cannot write safetensors file '%1': tensor %2: %3")
                    .arg(QDir::toNativeSeparators(path), quoted(name), detail));
}

std::vector<PreparedTensor>
prepareTensors(const QString& path, const std::vector<std::pair<QString, at::Tensor>>& tensors)
{
    std::vector<PreparedTensor> prepared;
    prepared.reserve(tensors.size());
    std::set<QString> seen;
    qint64 offset = 0;

    for (const auto& [name, tensor] : tensors) {
        if (name == metadataKey()) {
            failWrite(path, name, QStringLiteral("the name is reserved for the metadata"));
        }
        if (!seen.insert(name).second) {
            failWrite(path, name, QStringLiteral("the name appears twice"));
        }
        if (!tensor.defined()) {
            failWrite(path, name, QStringLiteral("the tensor is undefined"));
        }
        const char* dtype = nameOfDtype(tensor.scalar_type());
        if (!dtype) {
            failWrite(
                path, name,
                QStringLiteral("dtype %1 is not supported (supported: %2)")
                    .arg(QLatin1String(c10::toString(tensor.scalar_type())), supportedDtypes()));
        }

        at::Tensor data = tensor.detach().to(at::kCPU).contiguous();
        const auto size = static_cast<qint64>(data.nbytes());
        prepared.push_back({name, data, dtype, offset, offset + size});
        offset += size;
    }
    return prepared;
}

// JSON string literal of `text`, UTF-8. Bytes of multi-byte sequences (>= 0x80) pass unchanged.
QByteArray jsonString(const QString& text)
{
    QByteArray out = "\"";
    for (const char c : text.toUtf8()) {
        const auto byte = static_cast<uchar>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (byte < 0x20) {
            out += "\\u00";
            out += QByteArray::number(byte, 16).rightJustified(2, '0');
        } else {
            out += c;
        }
    }
    out += '"';
    return out;
}

QByteArray metadataJson(const std::map<QString, QString>& metadata)
{
    QByteArrayList entries;
    for (const auto& [key, value] : metadata) {
        entries.append(jsonString(key) + ':' + jsonString(value));
    }
    return '{' + entries.join(',') + '}';
}

QByteArray tensorJson(const PreparedTensor& tensor)
{
    QByteArrayList dims;
    for (int64_t dim : tensor.data.sizes()) {
        dims.append(QByteArray::number(static_cast<qlonglong>(dim)));
    }
    return jsonString(tensor.name) + ":{\"dtype\":\"" + tensor.dtype + "\",\"shape\":[" +
           dims.join(',') + "],\"data_offsets\":[" + QByteArray::number(tensor.begin) + ',' +
           QByteArray::number(tensor.end) + "]}";
}

// Written by hand rather than with QJsonDocument: it keeps the tensors in layout order and
// integers as integers.
QByteArray buildHeader(const std::vector<PreparedTensor>& tensors,
                       const std::map<QString, QString>& metadata)
{
    QByteArrayList entries;
    if (!metadata.empty()) {
        entries.append(jsonString(metadataKey()) + ':' + metadataJson(metadata));
    }
    for (const PreparedTensor& tensor : tensors) {
        entries.append(tensorJson(tensor));
    }

    QByteArray header = '{' + entries.join(',') + '}';
    // Aligns the data buffer, so readers can view 8-byte elements in place.
    const qsizetype padding =
        (kHeaderAlignment - header.size() % kHeaderAlignment) % kHeaderAlignment;
    header.append(padding, ' ');
    return header;
}

} // namespace

void writeSafeTensors(const QString& path,
                      const std::vector<std::pair<QString, at::Tensor>>& tensors,
                      const std::map<QString, QString>& metadata)
{
    const std::vector<PreparedTensor> prepared = prepareTensors(path, tensors);
    const QByteArray header = buildHeader(prepared, metadata);

    char length[kLengthFieldSize];
    qToLittleEndian<quint64>(static_cast<quint64>(header.size()), length);

    writeFileAtomically(path, [&](QIODevice& device) {
        writeAll(device, length, kLengthFieldSize);
        writeAll(device, header.constData(), header.size());
        for (const PreparedTensor& tensor : prepared) {
            if (tensor.end > tensor.begin) {
                writeAll(device, static_cast<const char*>(tensor.data.data_ptr()),
                         tensor.end - tensor.begin);
            }
        }
    });

    qCDebug(lcIo).noquote() << "wrote" << path << "with" << prepared.size() << "tensors";
}

} // namespace studio::io
