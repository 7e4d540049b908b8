# The fuzz harnesses and the project sources each one runs, shared by the two
# builds that use them: tests/fuzz/CMakeLists.txt (the main build, gcc: each
# harness with replay_main.cc under ASan and UBSan, replaying its corpus in
# make test) and tests/fuzz/libfuzzer/CMakeLists.txt (clang's libFuzzer, for
# make fuzz). Paths are relative to the project root.
set(DETR_FUZZ_IMAGE_SOURCES
  server/image/decode.cc server/image/image_header.cc server/image/jpeg_decode.cc server/image/preprocess.cc
  server/service/pipeline/request_image.cc server/service/pipeline/client_text.cc)
set(DETR_FUZZ_MODEL_CONFIG_SOURCES server/core/api/model_config.cc server/types/coco_classes.cc)

set(DETR_FUZZERS image safetensors model_config server_config detect_request oip_request)
set(DETR_FUZZ_SOURCES_image ${DETR_FUZZ_IMAGE_SOURCES})
set(DETR_FUZZ_SOURCES_safetensors server/core/io/safetensors.cc)
set(DETR_FUZZ_SOURCES_model_config ${DETR_FUZZ_MODEL_CONFIG_SOURCES})
# (preprocess.cc: the config checks that its canvases hold what the resize rule makes.)
set(DETR_FUZZ_SOURCES_server_config server/service/config/server_config.cc server/image/preprocess.cc
  ${DETR_FUZZ_MODEL_CONFIG_SOURCES})
set(DETR_FUZZ_SOURCES_detect_request
  server/service/detr_v1/detector_messages.cc ${DETR_FUZZ_IMAGE_SOURCES} ${DETR_FUZZ_MODEL_CONFIG_SOURCES})

set(DETR_FUZZ_SOURCES_oip_request
  server/service/oip/inference_json.cc server/service/oip/inference_protocol.cc
  server/service/oip/inference_grpc_messages.cc server/service/pipeline/client_text.cc)

# detr_fuzz_sources(OUT FUZZER ROOT): the project sources FUZZER runs, as
# absolute paths under ROOT (the project root).
function(detr_fuzz_sources out fuzzer root)
  set(sources)
  foreach(source IN LISTS DETR_FUZZ_SOURCES_${fuzzer})
    list(APPEND sources ${root}/${source})
  endforeach()
  set(${out} ${sources} PARENT_SCOPE)
endfunction()
