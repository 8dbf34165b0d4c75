#include "core/io/PngFile.h"

#include "core/Error.h"
#include "core/io/AtomicFile.h"

#include <ATen/ATen.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <zlib.h>

#include <QDir>
#include <QFile>
#include <QStringList>
#include <QtEndian>

#include <algorithm>
#include <vector>

namespace studio::io {

namespace {

const QByteArray kSignature = QByteArrayLiteral("\x89PNG\r\n\x1a\n");

// Length, type and CRC around every chunk's data.
constexpr qsizetype kChunkOverhead = 12;
// PNG keywords are 1 to 79 Latin-1 characters (PNG spec 11.3.4.3).
constexpr qsizetype kMaxKeywordLength = 79;
// A text chunk that inflates beyond this is a zip bomb, not generation parameters.
constexpr qsizetype kMaxInflatedText = 64 * 1024 * 1024;

struct Chunk
{
    QByteArray type;
    QByteArray data;
    qsizetype offset = 0; // of the length field, for messages
};

// `what` is "PNG file" or "image".
[[noreturn]] void failRead(const QString& path, const QString& detail,
                           const QString& what = QStringLiteral("PNG file"))
{
    throw Error(QStringLiteral("cannot read %1 '%2': %3")
                    .arg(what, QDir::toNativeSeparators(path), detail));
}

[[noreturn]] void failWrite(const QString& path, const QString& detail)
{
    throw Error(QStringLiteral("cannot write PNG file '%1': %2")
                    .arg(QDir::toNativeSeparators(path), detail));
}

quint32 chunkCrc(const QByteArray& type, const QByteArray& data)
{
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(type.constData()), type.size());
    crc = crc32(crc, reinterpret_cast<const Bytef*>(data.constData()), data.size());
    return static_cast<quint32>(crc);
}

void appendBigEndian(QByteArray& bytes, quint32 value)
{
    char buffer[4];
    qToBigEndian(value, buffer);
    bytes.append(buffer, sizeof buffer);
}

QByteArray encodeChunk(const QByteArray& type, const QByteArray& data)
{
    QByteArray chunk;
    chunk.reserve(data.size() + kChunkOverhead);
    appendBigEndian(chunk, static_cast<quint32>(data.size()));
    chunk += type;
    chunk += data;
    appendBigEndian(chunk, chunkCrc(type, data));
    return chunk;
}

// --- writing -----------------------------------------------------------------------------------

QString shapeText(const at::Tensor& tensor)
{
    QStringList dims;
    for (int64_t dim : tensor.sizes()) {
        dims << QString::number(dim);
    }
    return QLatin1Char('[') + dims.join(QStringLiteral(", ")) + QLatin1Char(']');
}

void checkPixels(const QString& path, const at::Tensor& pixels)
{
    if (!pixels.defined()) {
        failWrite(path, QStringLiteral("no pixels (the image tensor is undefined)"));
    }
    const bool isImage = pixels.dim() == 3 && pixels.size(2) == 3 && pixels.size(0) > 0 &&
                         pixels.size(1) > 0 && pixels.scalar_type() == at::kByte;
    if (!isImage) {
        failWrite(path, QStringLiteral("expected pixels [H, W, 3] uint8 RGB, got %1 %2")
                            .arg(shapeText(pixels),
                                 QString::fromLatin1(c10::toString(pixels.scalar_type()))));
    }
}

QByteArray encodePixels(const QString& path, const at::Tensor& pixels)
{
    const at::Tensor rgb = pixels.to(at::kCPU).contiguous();
    const cv::Mat view(static_cast<int>(rgb.size(0)), static_cast<int>(rgb.size(1)), CV_8UC3,
                       rgb.data_ptr<uint8_t>());
    std::vector<uchar> encoded;
    try {
        cv::Mat bgr;
        cv::cvtColor(view, bgr, cv::COLOR_RGB2BGR);
        if (!cv::imencode(".png", bgr, encoded)) {
            failWrite(path, QStringLiteral("OpenCV could not encode the image"));
        }
    } catch (const cv::Exception& error) {
        failWrite(path, QStringLiteral("OpenCV could not encode the image: %1")
                            .arg(QString::fromStdString(error.msg)));
    }
    return QByteArray(reinterpret_cast<const char*>(encoded.data()),
                      static_cast<qsizetype>(encoded.size()));
}

bool isLatin1(const QString& text)
{
    return std::all_of(text.begin(), text.end(), [](QChar ch) { return ch.unicode() <= 0xff; });
}

void checkTextEntry(const QString& path, const QString& keyword, const QString& text)
{
    // Readers split keyword and text at the first NUL, so neither may hold one.
    const bool keywordValid = !keyword.isEmpty() && keyword.size() <= kMaxKeywordLength &&
                              isLatin1(keyword) && !keyword.contains(QChar(0));
    if (!keywordValid) {
        failWrite(path, QStringLiteral("text keyword '%1' is not usable; a PNG keyword is 1 to "
                                       "79 Latin-1 characters without NUL, such as "
                                       "\"parameters\"")
                            .arg(keyword));
    }
    if (text.contains(QChar(0))) {
        failWrite(path, QStringLiteral("the text of '%1' contains a NUL character, which a PNG "
                                       "text chunk cannot hold")
                            .arg(keyword));
    }
}

// tEXt when the text is Latin-1, iTXt in UTF-8 otherwise: PIL's PngInfo.add_text, which the
// webui uses, makes the same choice, so both read each other's files.
QByteArray encodeTextChunk(const QString& keyword, const QString& text)
{
    QByteArray data = keyword.toLatin1();
    data += '\0';
    if (isLatin1(text)) {
        data += text.toLatin1();
        return encodeChunk(QByteArrayLiteral("tEXt"), data);
    }
    // Compression flag 0, method 0, empty language tag, empty translated keyword.
    data += QByteArray("\0\0\0\0", 4);
    data += text.toUtf8();
    return encodeChunk(QByteArrayLiteral("iTXt"), data);
}

// Offset just past the IHDR chunk, which the PNG spec requires to come first.
qsizetype endOfHeaderChunk(const QString& path, const QByteArray& png)
{
    const qsizetype headerOffset = kSignature.size();
    const bool hasHeader = png.startsWith(kSignature) &&
                           png.size() >= headerOffset + kChunkOverhead &&
                           png.mid(headerOffset + 4, 4) == QByteArrayLiteral("IHDR");
    if (!hasHeader) {
        failWrite(path, QStringLiteral("OpenCV produced a PNG without an IHDR chunk"));
    }
    const quint32 length = qFromBigEndian<quint32>(png.constData() + headerOffset);
    return headerOffset + kChunkOverhead + static_cast<qsizetype>(length);
}

// --- reading -----------------------------------------------------------------------------------

QByteArray readWholeFile(const QString& path, const QString& what)
{
    QFile file(path);
    if (!file.exists()) {
        failRead(path, QStringLiteral("no such file"), what);
    }
    if (!file.open(QIODevice::ReadOnly)) {
        failRead(path, file.errorString(), what);
    }
    return file.readAll();
}

bool isChunkType(const QByteArray& type)
{
    return std::all_of(type.begin(), type.end(), [](char ch) {
        return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z');
    });
}

Chunk readChunk(const QString& path, const QByteArray& png, qsizetype offset)
{
    const qsizetype left = png.size() - offset;
    if (left < kChunkOverhead) {
        failRead(path, QStringLiteral("truncated at byte %1: the file ends before its IEND "
                                      "chunk (was it copied completely?)")
                           .arg(png.size()));
    }
    Chunk chunk;
    chunk.offset = offset;
    chunk.type = png.mid(offset + 4, 4);
    const quint32 length = qFromBigEndian<quint32>(png.constData() + offset);
    if (!isChunkType(chunk.type) || length > 0x7fffffffU) {
        failRead(path, QStringLiteral("damaged chunk header at byte %1").arg(offset));
    }
    if (static_cast<quint64>(length) > static_cast<quint64>(left - kChunkOverhead)) {
        failRead(path, QStringLiteral("truncated: chunk '%1' at byte %2 needs %3 bytes, the file "
                                      "has %4 left (was it copied completely?)")
                           .arg(QString::fromLatin1(chunk.type))
                           .arg(offset)
                           .arg(length)
                           .arg(left - kChunkOverhead));
    }
    chunk.data = png.mid(offset + 8, length);
    const quint32 storedCrc = qFromBigEndian<quint32>(png.constData() + offset + 8 + length);
    if (storedCrc != chunkCrc(chunk.type, chunk.data)) {
        failRead(path, QStringLiteral("chunk '%1' at byte %2 has a wrong CRC; the file is "
                                      "damaged")
                           .arg(QString::fromLatin1(chunk.type))
                           .arg(offset));
    }
    return chunk;
}

// Every chunk up to and including IEND, CRCs checked.
std::vector<Chunk> readChunks(const QString& path, const QByteArray& png)
{
    if (!png.startsWith(kSignature)) {
        failRead(path, QStringLiteral("not a PNG file (it does not start with the PNG "
                                      "signature)"));
    }
    std::vector<Chunk> chunks;
    qsizetype offset = kSignature.size();
    while (chunks.empty() || chunks.back().type != "IEND") {
        chunks.push_back(readChunk(path, png, offset));
        offset += kChunkOverhead + chunks.back().data.size();
    }
    if (chunks.front().type != "IHDR") {
        failRead(path, QStringLiteral("the first chunk is '%1', not IHDR")
                           .arg(QString::fromLatin1(chunks.front().type)));
    }
    return chunks;
}

QByteArray inflateText(const QString& path, const Chunk& chunk, const QByteArray& compressed)
{
    z_stream stream{};
    if (inflateInit(&stream) != Z_OK) {
        failRead(path, QStringLiteral("zlib could not start"));
    }
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.constData()));
    stream.avail_in = static_cast<uInt>(compressed.size());

    QByteArray text;
    int status = Z_OK;
    while (status == Z_OK && text.size() <= kMaxInflatedText) {
        char buffer[16384];
        stream.next_out = reinterpret_cast<Bytef*>(buffer);
        stream.avail_out = sizeof buffer;
        status = inflate(&stream, Z_NO_FLUSH);
        text.append(buffer, static_cast<qsizetype>(sizeof buffer - stream.avail_out));
    }
    inflateEnd(&stream);

    if (status != Z_STREAM_END) {
        failRead(path, QStringLiteral("chunk '%1' at byte %2 holds compressed text that does "
                                      "not inflate (%3)")
                           .arg(QString::fromLatin1(chunk.type))
                           .arg(chunk.offset)
                           .arg(text.size() > kMaxInflatedText ? QStringLiteral("over 64 MiB")
                                                               : QStringLiteral("zlib error")));
    }
    return text;
}

[[noreturn]] void malformedText(const QString& path, const Chunk& chunk)
{
    failRead(path, QStringLiteral("chunk '%1' at byte %2 is malformed (its fields are not "
                                  "NUL-separated as the PNG spec requires)")
                       .arg(QString::fromLatin1(chunk.type))
                       .arg(chunk.offset));
}

// Splits off the NUL-terminated field that starts at `from`; returns the offset after the NUL.
qsizetype nulField(const QString& path, const Chunk& chunk, qsizetype from, QByteArray& field)
{
    const qsizetype end = chunk.data.indexOf('\0', from);
    if (end < 0) {
        malformedText(path, chunk);
    }
    field = chunk.data.mid(from, end - from);
    return end + 1;
}

std::pair<QString, QString> decodeText(const QString& path, const Chunk& chunk)
{
    QByteArray keyword;
    const qsizetype textStart = nulField(path, chunk, 0, keyword);
    return {QString::fromLatin1(keyword), QString::fromLatin1(chunk.data.mid(textStart))};
}

std::pair<QString, QString> decodeCompressedText(const QString& path, const Chunk& chunk)
{
    QByteArray keyword;
    const qsizetype methodAt = nulField(path, chunk, 0, keyword);
    // Method 0 (zlib deflate) is the only one the PNG spec defines.
    if (methodAt >= chunk.data.size() || chunk.data.at(methodAt) != 0) {
        malformedText(path, chunk);
    }
    const QByteArray text = inflateText(path, chunk, chunk.data.mid(methodAt + 1));
    return {QString::fromLatin1(keyword), QString::fromLatin1(text)};
}

std::pair<QString, QString> decodeInternationalText(const QString& path, const Chunk& chunk)
{
    QByteArray keyword;
    const qsizetype flagsAt = nulField(path, chunk, 0, keyword);
    if (flagsAt + 2 > chunk.data.size()) {
        malformedText(path, chunk);
    }
    const bool compressed = chunk.data.at(flagsAt) != 0;
    if (compressed && chunk.data.at(flagsAt + 1) != 0) {
        malformedText(path, chunk);
    }

    // The language tag and the translated keyword are not needed by anything we read.
    QByteArray skipped;
    qsizetype textStart = nulField(path, chunk, flagsAt + 2, skipped);
    textStart = nulField(path, chunk, textStart, skipped);
    const QByteArray text = chunk.data.mid(textStart);
    return {QString::fromLatin1(keyword),
            QString::fromUtf8(compressed ? inflateText(path, chunk, text) : text)};
}

} // namespace

void writePng(const QString& path, const at::Tensor& pixels, const PngText& text)
{
    checkPixels(path, pixels);
    QByteArray textChunks;
    for (const auto& [keyword, value] : text) {
        checkTextEntry(path, keyword, value);
        textChunks += encodeTextChunk(keyword, value);
    }

    QByteArray png = encodePixels(path, pixels);
    // Right after IHDR, as PIL writes them, so readers that stop at IDAT still find the text.
    png.insert(endOfHeaderChunk(path, png), textChunks);

    writeFileAtomically(path, png);
}

PngText readPngText(const QString& path)
{
    const std::vector<Chunk> chunks =
        readChunks(path, readWholeFile(path, QStringLiteral("PNG file")));

    PngText text;
    for (const Chunk& chunk : chunks) {
        if (chunk.type == "tEXt") {
            text.push_back(decodeText(path, chunk));
        } else if (chunk.type == "zTXt") {
            text.push_back(decodeCompressedText(path, chunk));
        } else if (chunk.type == "iTXt") {
            text.push_back(decodeInternationalText(path, chunk));
        }
    }
    return text;
}

at::Tensor readImageRgb(const QString& path)
{
    // Decoding from memory instead of cv::imread: QFile opens any path Qt can (non-ASCII names
    // on every system) and tells a missing file apart from one that does not decode.
    const QString what = QStringLiteral("image");
    const QByteArray bytes = readWholeFile(path, what);
    if (bytes.isEmpty()) {
        failRead(path, QStringLiteral("the file is empty"), what);
    }
    cv::Mat bgr;
    try {
        const cv::Mat encoded(1, static_cast<int>(bytes.size()), CV_8UC1,
                              const_cast<char*>(bytes.constData()));
        bgr = cv::imdecode(encoded, cv::IMREAD_COLOR);
    } catch (const cv::Exception& error) {
        failRead(path, QString::fromStdString(error.msg), what);
    }
    if (bgr.empty()) {
        failRead(path, QStringLiteral("not an image OpenCV can decode (png, jpg, webp, bmp)"),
                 what);
    }

    cv::Mat rgb;
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    at::Tensor pixels = at::empty({rgb.rows, rgb.cols, 3}, at::kByte);
    // cvtColor allocates a fresh, continuous matrix: one copy moves it into the tensor.
    std::copy_n(rgb.ptr<uint8_t>(), pixels.numel(), pixels.data_ptr<uint8_t>());
    return pixels;
}

} // namespace studio::io
