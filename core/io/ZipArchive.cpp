#include "core/io/ZipArchive.h"

#include "core/Error.h"
#include "core/io/AtomicFile.h"

#include <zlib.h>

#include <algorithm>
#include <limits>

namespace studio::io {

namespace {

constexpr uint32_t kLocalHeaderSignature = 0x04034b50;
constexpr uint32_t kCentralEntrySignature = 0x02014b50;
constexpr uint32_t kEndSignature = 0x06054b50;
constexpr uint32_t kZip64EndSignature = 0x06064b50;
constexpr uint32_t kZip64LocatorSignature = 0x07064b50;
constexpr size_t kLocalHeaderSize = 30;
constexpr size_t kCentralEntrySize = 46;
constexpr size_t kEndSize = 22;
constexpr size_t kZip64LocatorSize = 20;
constexpr size_t kZip64EndSize = 56;
constexpr uint16_t kZip64ExtraId = 0x0001;
constexpr uint16_t kPaddingExtraId = 0x4246; // "FB": the padding field torch writes
constexpr uint64_t kDataAlignment = 64;

uint64_t readLittleEndian(const uint8_t* bytes, size_t count)
{
    uint64_t value = 0;
    for (size_t i = 0; i < count; ++i) {
        value |= static_cast<uint64_t>(bytes[i]) << (8 * i);
    }
    return value;
}

void appendLittleEndian(QByteArray& out, uint64_t value, size_t count)
{
    for (size_t i = 0; i < count; ++i) {
        out.append(static_cast<char>((value >> (8 * i)) & 0xff));
    }
}

} // namespace

uint32_t crc32Of(const char* data, size_t size)
{
    uLong crc = ::crc32(0L, Z_NULL, 0);
    const auto* bytes = reinterpret_cast<const Bytef*>(data);
    while (size > 0) {
        const uInt chunk = static_cast<uInt>(std::min<size_t>(size, 1u << 30));
        crc = ::crc32(crc, bytes, chunk);
        bytes += chunk;
        size -= chunk;
    }
    return static_cast<uint32_t>(crc);
}

ZipReader::ZipReader(const char* data, size_t size, const QString& sourceName)
    : m_data(reinterpret_cast<const uint8_t*>(data)), m_size(size), m_sourceName(sourceName)
{
    if (m_size < kEndSize) {
        fail(QStringLiteral("the file is too short to be a torch zip archive"));
    }

    // The end record sits in the last 22 bytes plus an optional comment of up to 64 KiB.
    size_t end = m_size - kEndSize;
    const size_t searchLimit = m_size > kEndSize + 0xffff ? m_size - kEndSize - 0xffff : 0;
    while (readLittleEndian(m_data + end, 4) != kEndSignature) {
        if (end == searchLimit) {
            fail(QStringLiteral("not a torch zip archive (no zip directory found; legacy "
                                "pre-1.6 torch files are not supported, re-save with a newer "
                                "PyTorch)"));
        }
        --end;
    }

    uint64_t count = readLittleEndian(m_data + end + 10, 2);
    uint64_t directorySize = readLittleEndian(m_data + end + 12, 4);
    uint64_t directoryOffset = readLittleEndian(m_data + end + 16, 4);

    const bool zip64 =
        count == 0xffff || directorySize == 0xffffffff || directoryOffset == 0xffffffff;
    if (zip64) {
        if (end < kZip64LocatorSize ||
            readLittleEndian(m_data + end - kZip64LocatorSize, 4) != kZip64LocatorSignature) {
            fail(QStringLiteral("the zip64 directory locator is missing"));
        }
        const uint64_t zip64End = readLittleEndian(m_data + end - kZip64LocatorSize + 8, 8);
        if (zip64End > m_size - kZip64EndSize ||
            readLittleEndian(m_data + zip64End, 4) != kZip64EndSignature) {
            fail(QStringLiteral("the zip64 directory record is damaged"));
        }
        count = readLittleEndian(m_data + zip64End + 32, 8);
        directorySize = readLittleEndian(m_data + zip64End + 40, 8);
        directoryOffset = readLittleEndian(m_data + zip64End + 48, 8);
    }

    readCentralDirectory(directoryOffset, directorySize, count);
}

void ZipReader::fail(const QString& what) const
{
    throw Error(QStringLiteral("%1: %2").arg(m_sourceName, what));
}

void ZipReader::readCentralDirectory(uint64_t offset, uint64_t size, uint64_t count)
{
    if (offset > m_size || size > m_size - offset || count > size / kCentralEntrySize) {
        fail(QStringLiteral("the zip directory points outside the file (truncated download?)"));
    }

    size_t position = static_cast<size_t>(offset);
    for (uint64_t i = 0; i < count; ++i) {
        position = readEntry(position);
    }
    if (m_records.empty()) {
        fail(QStringLiteral("the archive is empty"));
    }
}

size_t ZipReader::readEntry(size_t position)
{
    if (position > m_size - kCentralEntrySize ||
        readLittleEndian(m_data + position, 4) != kCentralEntrySignature) {
        fail(QStringLiteral("a zip directory entry is damaged"));
    }
    const uint8_t* entry = m_data + position;
    const uint64_t flags = readLittleEndian(entry + 8, 2);
    const uint64_t method = readLittleEndian(entry + 10, 2);
    const auto crc = static_cast<uint32_t>(readLittleEndian(entry + 16, 4));
    uint64_t compressedSize = readLittleEndian(entry + 20, 4);
    uint64_t size = readLittleEndian(entry + 24, 4);
    const size_t nameLength = readLittleEndian(entry + 28, 2);
    const size_t extraLength = readLittleEndian(entry + 30, 2);
    const size_t commentLength = readLittleEndian(entry + 32, 2);
    uint64_t localOffset = readLittleEndian(entry + 42, 4);

    const size_t next = position + kCentralEntrySize + nameLength + extraLength + commentLength;
    if (next > m_size) {
        fail(QStringLiteral("a zip directory entry runs past the end of the file"));
    }
    const auto* nameBytes = reinterpret_cast<const char*>(entry + kCentralEntrySize);
    const QString fullName = QString::fromUtf8(nameBytes, static_cast<qsizetype>(nameLength));

    // Zip64 extra field: the 64-bit values, in order, for each 32-bit field that is saturated.
    const uint8_t* extra = entry + kCentralEntrySize + nameLength;
    for (size_t at = 0; at + 4 <= extraLength;) {
        const uint64_t id = readLittleEndian(extra + at, 2);
        const size_t length = readLittleEndian(extra + at + 2, 2);
        if (at + 4 + length > extraLength) {
            fail(QStringLiteral("the zip entry '%1' has a damaged extra field").arg(fullName));
        }
        if (id == kZip64ExtraId) {
            size_t field = at + 4;
            for (uint64_t* value : {&size, &compressedSize, &localOffset}) {
                if (*value == 0xffffffff && field + 8 <= at + 4 + length) {
                    *value = readLittleEndian(extra + field, 8);
                    field += 8;
                }
            }
        }
        at += 4 + length;
    }

    if (flags & 1) {
        fail(QStringLiteral("the zip entry '%1' is encrypted").arg(fullName));
    }
    if (method != 0 || compressedSize != size) {
        fail(QStringLiteral("the zip entry '%1' is compressed; torch files store records "
                            "uncompressed (re-save the file with torch.save)")
                 .arg(fullName));
    }

    const qsizetype slash = fullName.indexOf(QLatin1Char('/'));
    if (slash <= 0) {
        fail(QStringLiteral("the zip entry '%1' is not inside the archive's folder").arg(fullName));
    }
    const QString archiveName = fullName.left(slash);
    if (m_archiveName.isEmpty()) {
        m_archiveName = archiveName;
    } else if (archiveName != m_archiveName) {
        fail(QStringLiteral("the zip entries are in more than one top folder"));
    }

    Record record{fullName.mid(slash + 1), locateData(localOffset, size), size, crc};
    m_records[record.name] = record;
    return next;
}

uint64_t ZipReader::locateData(uint64_t localHeaderOffset, uint64_t size) const
{
    if (localHeaderOffset > m_size - kLocalHeaderSize ||
        readLittleEndian(m_data + localHeaderOffset, 4) != kLocalHeaderSignature) {
        fail(QStringLiteral("a zip record header is damaged"));
    }
    const uint8_t* header = m_data + localHeaderOffset;
    const uint64_t dataOffset = localHeaderOffset + kLocalHeaderSize +
                                readLittleEndian(header + 26, 2) + readLittleEndian(header + 28, 2);
    if (dataOffset > m_size || size > m_size - dataOffset) {
        fail(QStringLiteral("a zip record runs past the end of the file (truncated download?)"));
    }
    return dataOffset;
}

std::vector<QString> ZipReader::recordNames() const
{
    std::vector<QString> names;
    for (const auto& [name, record] : m_records) {
        names.push_back(name);
    }
    return names;
}

const ZipReader::Record* ZipReader::find(const QString& name) const
{
    const auto found = m_records.find(name);
    return found == m_records.end() ? nullptr : &found->second;
}

const char* ZipReader::recordData(const Record& record, bool verifyChecksum) const
{
    const auto* data = reinterpret_cast<const char*>(m_data + record.dataOffset);
    if (verifyChecksum && crc32Of(data, record.size) != record.crc32) {
        fail(QStringLiteral("the record '%1' is damaged (checksum mismatch)").arg(record.name));
    }
    return data;
}

ZipWriter::ZipWriter(QIODevice& device, const QString& archiveName)
    : m_device(device), m_archiveName(archiveName)
{
}

void ZipWriter::write(const char* data, size_t size)
{
    writeAll(m_device, data, static_cast<qint64>(size));
    m_position += size;
}

void ZipWriter::write(const QByteArray& bytes)
{
    write(bytes.constData(), static_cast<size_t>(bytes.size()));
}

void ZipWriter::addRecord(const QString& name, const char* data, size_t size)
{
    const QByteArray fullName = (m_archiveName + QLatin1Char('/') + name).toUtf8();
    constexpr uint64_t kLimit = std::numeric_limits<uint32_t>::max();
    if (size >= kLimit || m_position + size + 1024 >= kLimit) {
        throw Error(QStringLiteral("'%1' would be larger than 4 GiB, which the writer does not "
                                   "support")
                        .arg(m_archiveName));
    }

    // Pad the extra field so that the data starts on a 64-byte boundary, as torch does.
    const uint64_t headerEnd = m_position + kLocalHeaderSize + fullName.size() + 4;
    const uint64_t padding = (kDataAlignment - headerEnd % kDataAlignment) % kDataAlignment;

    const Entry entry{fullName, crc32Of(data, size), static_cast<uint32_t>(size),
                      static_cast<uint32_t>(m_position)};
    QByteArray header;
    appendLittleEndian(header, kLocalHeaderSignature, 4);
    appendLittleEndian(header, 20, 2); // version needed: 2.0
    appendLittleEndian(header, 0, 2);  // flags
    appendLittleEndian(header, 0, 2);  // method: stored
    appendLittleEndian(header, 0, 4);  // time and date
    appendLittleEndian(header, entry.crc32, 4);
    appendLittleEndian(header, entry.size, 4);
    appendLittleEndian(header, entry.size, 4);
    appendLittleEndian(header, static_cast<uint64_t>(fullName.size()), 2);
    appendLittleEndian(header, 4 + padding, 2);
    header.append(fullName);
    appendLittleEndian(header, kPaddingExtraId, 2);
    appendLittleEndian(header, padding, 2);
    header.append(QByteArray(static_cast<qsizetype>(padding), 'Z'));

    write(header);
    write(data, size);
    m_entries.push_back(entry);
}

void ZipWriter::finish()
{
    const uint64_t directoryOffset = m_position;
    for (const Entry& entry : m_entries) {
        QByteArray record;
        appendLittleEndian(record, kCentralEntrySignature, 4);
        appendLittleEndian(record, 20, 2); // made by
        appendLittleEndian(record, 20, 2); // needed
        appendLittleEndian(record, 0, 2);  // flags
        appendLittleEndian(record, 0, 2);  // method
        appendLittleEndian(record, 0, 4);  // time and date
        appendLittleEndian(record, entry.crc32, 4);
        appendLittleEndian(record, entry.size, 4);
        appendLittleEndian(record, entry.size, 4);
        appendLittleEndian(record, static_cast<uint64_t>(entry.name.size()), 2);
        appendLittleEndian(record, 0, 2); // extra
        appendLittleEndian(record, 0, 2); // comment
        appendLittleEndian(record, 0, 2); // disk
        appendLittleEndian(record, 0, 2); // internal attributes
        appendLittleEndian(record, 0, 4); // external attributes
        appendLittleEndian(record, entry.localHeaderOffset, 4);
        record.append(entry.name);
        write(record);
    }

    QByteArray end;
    appendLittleEndian(end, kEndSignature, 4);
    appendLittleEndian(end, 0, 4); // disk numbers
    appendLittleEndian(end, m_entries.size(), 2);
    appendLittleEndian(end, m_entries.size(), 2);
    appendLittleEndian(end, m_position - directoryOffset, 4);
    appendLittleEndian(end, directoryOffset, 4);
    appendLittleEndian(end, 0, 2); // comment
    write(end);
}

} // namespace studio::io
