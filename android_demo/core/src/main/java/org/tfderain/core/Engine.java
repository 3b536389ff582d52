package org.tfderain.core;

import java.nio.ByteBuffer;

/**
 * Runs the model on one tile. The app implements it with the LiteRT interpreter; tests plug in a
 * fake or a recording of outputs that LiteRT produced in Python.
 */
public interface Engine extends AutoCloseable {
  /**
   * Runs one tile.
   *
   * @param input the {@code rainy} tensor's bytes ({@link ModelSpec#input}), position 0
   * @param outputs one buffer per model output, at the spec's output {@code index}, each sized
   *     for that tensor, position 0, to be filled (positions are reset by the caller)
   * @throws Exception whatever the runtime throws; the tile is not retried
   */
  void run(ByteBuffer input, ByteBuffer[] outputs) throws Exception;

  @Override
  default void close() {}
}
