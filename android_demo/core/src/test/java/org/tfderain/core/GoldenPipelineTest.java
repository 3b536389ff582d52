package org.tfderain.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.Test;

/**
 * The whole pipeline against the Python golden writer, byte for byte: the preprocessed input
 * tiles must equal the ones Python fed to LiteRT, and the image assembled from LiteRT's recorded
 * tile outputs must equal Python's assembly (float32 bits and 8-bit bytes).
 */
public class GoldenPipelineTest {
  /** Checks each input tile and replays the recorded outputs, in tile order. */
  static final class RecordedEngine implements Engine {
    private final Path folder;
    private final List<Object> tiles;
    int calls;

    RecordedEngine(Path folder, List<Object> tiles) {
      this.folder = folder;
      this.tiles = tiles;
    }

    @Override
    public void run(ByteBuffer input, ByteBuffer[] outputs) throws Exception {
      Map<String, Object> tile = Golden.map(tiles.get(calls));
      byte[] expected = Golden.bytes(folder.resolve((String) tile.get("input")));
      byte[] actual = new byte[input.remaining()];
      input.duplicate().get(actual);
      assertArrayEquals(
          "input tile " + calls + " at y=" + tile.get("y") + " x=" + tile.get("x"),
          expected,
          actual);
      List<Object> recorded = Golden.list(tile.get("outputs"));
      assertEquals(recorded.size(), outputs.length);
      for (int i = 0; i < outputs.length; i++) {
        byte[] data = Golden.bytes(folder.resolve((String) recorded.get(i)));
        assertEquals("output " + i + " size", outputs[i].capacity(), data.length);
        outputs[i].put(data);
      }
      calls++;
    }
  }

  private void checkCase(String name) throws Exception {
    Path folder = Golden.dir().resolve(name);
    assertTrue("missing golden folder " + folder, folder.toFile().isDirectory());
    assertEquals("golden tiles are little-endian", ByteOrder.LITTLE_ENDIAN, ByteOrder.nativeOrder());
    Map<String, Object> c = Golden.json(folder.resolve("case.json"));
    ModelSpec spec = ModelSpec.load(folder.resolve((String) c.get("spec")));
    Map<String, Object> img = Golden.map(c.get("image"));
    int height = Golden.integer(img.get("height"));
    int width = Golden.integer(img.get("width"));
    RgbImage image =
        RgbImage.fromRgbBytes(
            Golden.bytes(folder.resolve((String) img.get("file"))), height, width);

    Tiler tiler = Tiler.forSpec(spec, height, width);
    assertArrayEquals(Golden.ints(c.get("padded")), new int[] {tiler.paddedHeight, tiler.paddedWidth});
    assertArrayEquals(Golden.ints(c.get("ys")), tiler.ys);
    assertArrayEquals(Golden.ints(c.get("xs")), tiler.xs);

    List<Object> tiles = Golden.list(c.get("tiles"));
    RecordedEngine engine = new RecordedEngine(folder, tiles);
    TiledDerainer.Result result = new TiledDerainer(spec, engine).run(image, null);
    assertEquals(tiles.size(), engine.calls);
    assertEquals(tiles.size(), result.tiles);

    byte[] expectedFloat = Golden.bytes(folder.resolve((String) c.get("expected_float")));
    ByteBuffer actualFloat = ByteBuffer.allocate(expectedFloat.length).order(ByteOrder.LITTLE_ENDIAN);
    for (float v : result.image.data) {
      actualFloat.putFloat(v);
    }
    int mismatches = 0;
    for (int i = 0; i < expectedFloat.length; i++) {
      if (expectedFloat[i] != actualFloat.array()[i]) {
        mismatches++;
      }
    }
    if (mismatches > 0) {
      fail(name + ": " + mismatches + " float32 bytes differ from the Python assembly");
    }
    assertArrayEquals(
        Golden.bytes(folder.resolve((String) c.get("expected_rgb"))), result.image.toRgbBytes());
  }

  @Test
  public void int8ModelMatchesPythonByteForByte() throws Exception {
    checkCase("int8");
  }

  @Test
  public void floatModelMatchesPythonByteForByte() throws Exception {
    checkCase("float");
  }

  @Test
  public void goldenSpecsDescribeTheirModels() throws Exception {
    ModelSpec q = ModelSpec.load(Golden.dir().resolve("int8/model_spec.json"));
    assertEquals(DType.UINT8, q.input.dtype);
    assertEquals(DType.UINT8, q.derained.dtype);
    assertTrue(q.input.scale > 0f);
    ModelSpec f = ModelSpec.load(Golden.dir().resolve("float/model_spec.json"));
    assertEquals(DType.FLOAT32, f.input.dtype);
    assertEquals(0, f.input.zeroPoint);
    assertEquals(24, f.tileHeight);
  }
}
