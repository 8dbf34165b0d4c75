// PNG files with text chunks: pixels and text survive the round trip, the chunks are laid out as
// PIL writes them (so the webui's PNG Info reads our "parameters"), compressed text from other
// writers is read, damaged files are refused with the path in the message, and a rewrite
// replaces the file atomically.

#include "support/TestSupport.h"

#include "core/io/PngFile.h"

#include <ATen/ATen.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <zlib.h>

#include <QDir>
#include <QFile>
#include <QObject>
#include <QTemporaryDir>
#include <QTest>
#include <QtEndian>

#include <memory>
#include <vector>

using namespace studio;

namespace {

struct RawChunk
{
    QByteArray type;
    QByteArray data;
};

// Every chunk of a PNG, read without any of the code under test.
std::vector<RawChunk> rawChunks(const QByteArray& png)
{
    std::vector<RawChunk> chunks;
    qsizetype offset = 8;
    while (offset + 12 <= png.size()) {
        const quint32 length = qFromBigEndian<quint32>(png.constData() + offset);
        chunks.push_back({png.mid(offset + 4, 4), png.mid(offset + 8, length)});
        offset += 12 + length;
    }
    return chunks;
}

QByteArray encodeRawChunk(const QByteArray& type, const QByteArray& data)
{
    QByteArray chunk(4, '\0');
    qToBigEndian(static_cast<quint32>(data.size()), chunk.data());
    chunk += type + data;
    uLong crc = crc32(0L, Z_NULL, 0);
    const QByteArray covered = type + data;
    crc = crc32(crc, reinterpret_cast<const Bytef*>(covered.constData()), covered.size());
    QByteArray crcBytes(4, '\0');
    qToBigEndian(static_cast<quint32>(crc), crcBytes.data());
    return chunk + crcBytes;
}

QByteArray deflated(const QByteArray& text)
{
    uLongf size = compressBound(text.size());
    QByteArray out(static_cast<qsizetype>(size), '\0');
    compress(reinterpret_cast<Bytef*>(out.data()), &size,
             reinterpret_cast<const Bytef*>(text.constData()), text.size());
    out.resize(static_cast<qsizetype>(size));
    return out;
}

QByteArray readAll(const QString& path)
{
    QFile file(path);
    return file.open(QIODevice::ReadOnly) ? file.readAll() : QByteArray();
}

void writeAll(const QString& path, const QByteArray& bytes)
{
    QFile file(path);
    if (file.open(QIODevice::WriteOnly | QIODevice::Truncate)) {
        file.write(bytes);
    }
}

// Odd sizes, so that rows are not a multiple of 4 bytes and width and height are not swapped.
at::Tensor testPixels(int64_t height = 5, int64_t width = 7)
{
    return at::randint(0, 256, {height, width, 3}, at::kByte);
}

QString chunkText(const QByteArray& data)
{
    return QString::fromLatin1(data.toPercentEncoding());
}

} // namespace

class TestPngFile : public QObject
{
    Q_OBJECT

private Q_SLOTS:
    void init();
    void testPixelsRoundTrip();
    void testPixelsReadableByOpenCv();
    void testTextRoundTrip_data();
    void testTextRoundTrip();
    void testChunksAreWrittenAsPilWritesThem();
    void testSeveralChunksKeepTheirOrder();
    void testCompressedTextFromOtherWriters();
    void testDamagedFilesAreRefused_data();
    void testDamagedFilesAreRefused();
    void testBadInputIsRefused();
    void testRewriteReplacesTheFileAtomically();
    void testFailedWriteLeavesNothing();
    void testReadImageErrors();

private:
    QString path(const QString& name) const { return m_dir->filePath(name); }

    std::unique_ptr<QTemporaryDir> m_dir; // a fresh, empty folder for every test
};

void TestPngFile::init()
{
    m_dir = std::make_unique<QTemporaryDir>();
    QVERIFY(m_dir->isValid());
    at::manual_seed(0);
}

void TestPngFile::testPixelsRoundTrip()
{
    const at::Tensor pixels = testPixels();
    io::writePng(path("a.png"), pixels);

    const at::Tensor read = io::readImageRgb(path("a.png"));
    QCOMPARE(test::shapeOf(read), test::shapeOf(pixels));
    QCOMPARE(read.scalar_type(), at::kByte);
    QVERIFY(at::equal(read, pixels));

    // Views that are not contiguous are written as the image they show.
    const at::Tensor wide = testPixels(6, 9);
    const at::Tensor view = wide.slice(1, 1, 8, 2);
    io::writePng(path("view.png"), view);
    QVERIFY(at::equal(io::readImageRgb(path("view.png")), view));
}

void TestPngFile::testPixelsReadableByOpenCv()
{
    const at::Tensor pixels = testPixels();
    io::writePng(path("a.png"), pixels, {{"parameters", "日本 ✓, Steps: 20"}});

    // libpng checks every chunk's CRC, so this also proves the inserted chunks are sound.
    const QByteArray name = QFile::encodeName(path("a.png"));
    const cv::Mat bgr = cv::imread(name.toStdString(), cv::IMREAD_UNCHANGED);
    QCOMPARE(bgr.rows, 5);
    QCOMPARE(bgr.cols, 7);
    QCOMPARE(bgr.type(), CV_8UC3);
    for (int y = 0; y < bgr.rows; ++y) {
        for (int x = 0; x < bgr.cols; ++x) {
            const cv::Vec3b pixel = bgr.at<cv::Vec3b>(y, x);
            for (int c = 0; c < 3; ++c) {
                QCOMPARE(int(pixel[2 - c]), pixels[y][x][c].item<int>());
            }
        }
    }
}

void TestPngFile::testTextRoundTrip_data()
{
    QTest::addColumn<QString>("text");
    QTest::addColumn<QByteArray>("chunkType");

    QTest::addRow("ASCII") << "a photo, Steps: 20, Sampler: Euler a" << QByteArray("tEXt");
    QTest::addRow("Latin-1 accents") << "café, naïve, 1/2 ½" << QByteArray("tEXt");
    QTest::addRow("empty") << "" << QByteArray("tEXt");
    QTest::addRow("several lines")
        << "prompt\nNegative prompt: blur\nSteps: 20" << QByteArray("tEXt");
    QTest::addRow("Japanese and a check mark") << "日本 ✓" << QByteArray("iTXt");
    QTest::addRow("one character outside Latin-1") << "naïve – dash" << QByteArray("iTXt");
    QTest::addRow("emoji") << "🙂 smile" << QByteArray("iTXt");
}

void TestPngFile::testTextRoundTrip()
{
    QFETCH(QString, text);
    QFETCH(QByteArray, chunkType);

    io::writePng(path("a.png"), testPixels(), {{"parameters", text}});

    const io::PngText read = io::readPngText(path("a.png"));
    QCOMPARE(read.size(), size_t(1));
    QCOMPARE(read[0].first, QStringLiteral("parameters"));
    QCOMPARE(read[0].second, text);

    const std::vector<RawChunk> chunks = rawChunks(readAll(path("a.png")));
    QCOMPARE(chunks.at(1).type, chunkType);
}

void TestPngFile::testChunksAreWrittenAsPilWritesThem()
{
    io::writePng(path("a.png"), testPixels(), {{"parameters", "café"}, {"comment", "日本 ✓"}});
    const QByteArray png = readAll(path("a.png"));
    QVERIFY(png.startsWith("\x89PNG\r\n\x1a\n"));

    // Right after IHDR; tEXt is keyword NUL Latin-1 text, iTXt keyword NUL, compression flag 0,
    // method 0, empty language tag and translated keyword, UTF-8 text (PIL's PngInfo.add_text).
    const std::vector<RawChunk> chunks = rawChunks(png);
    QCOMPARE(chunks.at(0).type, QByteArray("IHDR"));
    QCOMPARE(chunks.at(1).type, QByteArray("tEXt"));
    QCOMPARE(chunkText(chunks.at(1).data), chunkText(QByteArray("parameters\0caf\xe9", 15)));
    QCOMPARE(chunks.at(2).type, QByteArray("iTXt"));
    const QByteArray expected =
        QByteArray("comment\0\0\0\0\0", 12) + QString("日本 ✓").toUtf8();
    QCOMPARE(chunkText(chunks.at(2).data), chunkText(expected));
    QCOMPARE(chunks.back().type, QByteArray("IEND"));
}

void TestPngFile::testSeveralChunksKeepTheirOrder()
{
    const io::PngText text = {
        {"parameters", "a cat, Steps: 20"},
        {"Title", "日本"},
        {"Software", "Hypernet Studio"},
        {"parameters", "a second chunk with the same keyword"},
    };
    io::writePng(path("a.png"), testPixels(), text);
    QCOMPARE(io::readPngText(path("a.png")), text);

    io::writePng(path("none.png"), testPixels());
    QVERIFY(io::readPngText(path("none.png")).empty());
}

void TestPngFile::testCompressedTextFromOtherWriters()
{
    io::writePng(path("plain.png"), testPixels());
    QByteArray png = readAll(path("plain.png"));

    const QString latin = QStringLiteral("zipped café ").repeated(50);
    const QString unicode = QStringLiteral("圧縮 ✓ ").repeated(50);
    const QByteArray zText =
        encodeRawChunk("zTXt", QByteArray("zkey\0\0", 6) + deflated(latin.toLatin1()));
    const QByteArray iText = encodeRawChunk("iTXt", QByteArray("ikey\0\1\0ja\0\xe9\x8d\xb5\0", 14) +
                                                        deflated(unicode.toUtf8()));
    const QByteArray plainIText =
        encodeRawChunk("iTXt", QByteArray("pkey\0\0\0en\0key\0", 14) + QByteArray("plain"));
    // After the image data, where some writers put them.
    png.insert(png.size() - 12, zText + iText + plainIText);
    writeAll(path("other.png"), png);

    const io::PngText expected = {{"zkey", latin}, {"ikey", unicode}, {"pkey", "plain"}};
    QCOMPARE(io::readPngText(path("other.png")), expected);
}

void TestPngFile::testDamagedFilesAreRefused_data()
{
    QTest::addColumn<QString>("damage");
    QTest::addColumn<QString>("expected");

    QTest::addRow("text byte flipped") << "flip text"
                                       << "chunk 'tEXt' at byte 33 has a wrong CRC";
    QTest::addRow("CRC byte flipped") << "flip crc"
                                      << "has a wrong CRC";
    QTest::addRow("cut in the image data") << "cut middle"
                                           << "truncated: chunk 'IDAT'";
    QTest::addRow("IEND missing") << "cut end"
                                  << "ends before its IEND";
    QTest::addRow("cut in the signature") << "cut signature"
                                          << "not a PNG file";
    QTest::addRow("a text file") << "text"
                                 << "not a PNG file";
    QTest::addRow("empty file") << "empty"
                                << "not a PNG file";
    QTest::addRow("zTXt that does not inflate") << "bad zlib"
                                                << "does not inflate";
    QTest::addRow("tEXt without its NUL") << "no nul"
                                          << "malformed";
}

void TestPngFile::testDamagedFilesAreRefused()
{
    QFETCH(QString, damage);
    QFETCH(QString, expected);

    io::writePng(path("a.png"), testPixels(), {{"parameters", "Steps: 20"}});
    QByteArray png = readAll(path("a.png"));
    const qsizetype textData = 33 + 8; // signature, IHDR chunk, then the tEXt length and type

    if (damage == "flip text") {
        png[textData + 2] = char(png[textData + 2] ^ 0x20);
    } else if (damage == "flip crc") {
        png[textData + 20] = char(png[textData + 20] ^ 0x01);
    } else if (damage == "cut middle") {
        png.truncate(png.size() - 20);
    } else if (damage == "cut end") {
        png.truncate(png.size() - 12);
    } else if (damage == "cut signature") {
        png.truncate(5);
    } else if (damage == "text") {
        png = "this is not a picture\n";
    } else if (damage == "empty") {
        png.clear();
    } else if (damage == "bad zlib") {
        png.insert(33, encodeRawChunk("zTXt", QByteArray("k\0\0not zlib", 11)));
    } else if (damage == "no nul") {
        png.insert(33, encodeRawChunk("tEXt", "keyword without text"));
    }
    writeAll(path("damaged.png"), png);

    const QString named = QStringLiteral("cannot read PNG file '%1': ")
                              .arg(QDir::toNativeSeparators(path("damaged.png")));
    const QString message = test::errorMessageOf([&] { io::readPngText(path("damaged.png")); });
    QVERIFY2(message.startsWith(named), qPrintable(message));
    QVERIFY2(message.contains(expected), qPrintable(message));
}

void TestPngFile::testBadInputIsRefused()
{
    const QString named =
        QStringLiteral("cannot write PNG file '%1': ").arg(QDir::toNativeSeparators(path("a.png")));

    STUDIO_VERIFY_ERROR(io::writePng(path("a.png"), at::zeros({4, 4, 3})),
                        named + "expected pixels [H, W, 3] uint8 RGB, got [4, 4, 3] Float");
    STUDIO_VERIFY_ERROR(io::writePng(path("a.png"), at::zeros({4, 4, 4}, at::kByte)),
                        "got [4, 4, 4] Byte");
    STUDIO_VERIFY_ERROR(io::writePng(path("a.png"), at::zeros({4, 4}, at::kByte)),
                        "got [4, 4] Byte");
    STUDIO_VERIFY_ERROR(io::writePng(path("a.png"), at::zeros({0, 4, 3}, at::kByte)),
                        "got [0, 4, 3] Byte");
    STUDIO_VERIFY_ERROR(io::writePng(path("a.png"), at::Tensor()), named + "no pixels");

    STUDIO_VERIFY_ERROR(io::writePng(path("a.png"), testPixels(), {{"", "x"}}),
                        named + "text keyword '' is not usable");
    STUDIO_VERIFY_ERROR(io::writePng(path("a.png"), testPixels(), {{QString(80, 'k'), "x"}}),
                        "1 to 79 Latin-1 characters");
    STUDIO_VERIFY_ERROR(io::writePng(path("a.png"), testPixels(), {{"日本", "x"}}),
                        "is not usable");
    STUDIO_VERIFY_ERROR(
        io::writePng(path("a.png"), testPixels(), {{"k", QString::fromUtf8("a\0b", 3)}}),
        "contains a NUL character");
    QVERIFY(!QFile::exists(path("a.png")));
}

void TestPngFile::testRewriteReplacesTheFileAtomically()
{
    io::writePng(path("a.png"), testPixels(), {{"parameters", "first"}});
    const QByteArray first = readAll(path("a.png"));

    // A reader that has the old file open keeps reading the old file whole: the new content went
    // to a new file that was renamed over the path, never into the old one.
    QFile reader(path("a.png"));
    QVERIFY(reader.open(QIODevice::ReadOnly));
    const at::Tensor second = testPixels(8, 3);
    io::writePng(path("a.png"), second, {{"parameters", "second"}});

    QCOMPARE(reader.readAll(), first);
    QCOMPARE(io::readPngText(path("a.png")).at(0).second, QStringLiteral("second"));
    QVERIFY(at::equal(io::readImageRgb(path("a.png")), second));
    QCOMPARE(QDir(m_dir->path()).entryList(QDir::Files), QStringList{"a.png"}); // no temp file left
}

void TestPngFile::testFailedWriteLeavesNothing()
{
    const QString missingFolder = path("not/there/a.png");
    STUDIO_VERIFY_ERROR(io::writePng(missingFolder, testPixels()),
                        QDir::toNativeSeparators(missingFolder));
    QVERIFY(!QFile::exists(missingFolder));
    QVERIFY(QDir(m_dir->path()).entryList(QDir::Files).isEmpty());
}

void TestPngFile::testReadImageErrors()
{
    const QString named =
        QStringLiteral("cannot read image '%1': ").arg(QDir::toNativeSeparators(path("x.png")));
    STUDIO_VERIFY_ERROR(io::readImageRgb(path("x.png")), named + "no such file");
    writeAll(path("x.png"), "not an image");
    STUDIO_VERIFY_ERROR(io::readImageRgb(path("x.png")), named + "not an image OpenCV can decode");
    writeAll(path("x.png"), {});
    STUDIO_VERIFY_ERROR(io::readImageRgb(path("x.png")), named + "the file is empty");
    STUDIO_VERIFY_ERROR(io::readPngText(path("missing.png")), "no such file");
}

QTEST_GUILESS_MAIN(TestPngFile)
#include "TestPngFile.moc"
