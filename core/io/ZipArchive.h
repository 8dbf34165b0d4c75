#pragma once

// The zip container of torch files (torch.save since PyTorch 1.6): uncompressed ("stored")
// records under one top folder, data records aligned to 64 bytes so they can be used in place.
//
// ZipReader works on memory the caller owns (usually a memory-mapped file) and validates every
// offset and size against it before use. ZipWriter streams records to a device. Zip64 is read;
// the writer refuses archives past 4 GiB, which no hypernetwork comes near.

#include <QByteArray>
#include <QIODevice>
#include <QString>

#include <cstdint>
#include <map>
#include <vector>

namespace studio::io {

class ZipReader
{
public:
    struct Record
    {
        QString name; // without the archive's top folder
        uint64_t dataOffset = 0;
        uint64_t size = 0;
        uint32_t crc32 = 0;
    };

    // Parses the central directory. Throws studio::Error naming `sourceName` when the data is
    // not a zip archive, is truncated, uses compression, or points outside itself.
    ZipReader(const char* data, size_t size, const QString& sourceName);

    const QString& archiveName() const { return m_archiveName; }
    std::vector<QString> recordNames() const;
    const Record* find(const QString& name) const;

    // The record's bytes, in place. Throws when `verifyChecksum` and the CRC-32 disagrees.
    const char* recordData(const Record& record, bool verifyChecksum) const;

private:
    [[noreturn]] void fail(const QString& what) const;
    void readCentralDirectory(uint64_t offset, uint64_t size, uint64_t count);
    size_t readEntry(size_t position);
    uint64_t locateData(uint64_t localHeaderOffset, uint64_t size) const;

    const uint8_t* m_data;
    size_t m_size;
    QString m_sourceName;
    QString m_archiveName;
    std::map<QString, Record> m_records;
};

class ZipWriter
{
public:
    ZipWriter(QIODevice& device, const QString& archiveName);

    void addRecord(const QString& name, const char* data, size_t size);
    void addRecord(const QString& name, const QByteArray& data)
    {
        addRecord(name, data.constData(), static_cast<size_t>(data.size()));
    }
    // Writes the central directory; the writer cannot be used afterwards.
    void finish();

private:
    struct Entry
    {
        QByteArray name;
        uint32_t crc32;
        uint32_t size;
        uint32_t localHeaderOffset;
    };

    void write(const QByteArray& bytes);
    void write(const char* data, size_t size);

    QIODevice& m_device;
    QString m_archiveName;
    uint64_t m_position = 0;
    std::vector<Entry> m_entries;
};

uint32_t crc32Of(const char* data, size_t size);

} // namespace studio::io
