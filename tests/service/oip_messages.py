"""Message classes of the Open Inference Protocol built at run time from a
descriptor set that protoc made of proto/inference/*.proto: no generated
stubs, no detr-serve code, only Debian's protobuf. Shared by the test
clients beside it."""
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory


def message_class_finder(descriptor_set_path):
    """A function: full message name ("inference.ModelInferRequest") -> its class."""
    files = descriptor_pb2.FileDescriptorSet()
    with open(descriptor_set_path, "rb") as f:
        files.ParseFromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    factory = message_factory.MessageFactory(pool)

    def cls(name):
        descriptor = pool.FindMessageTypeByName(name)
        if hasattr(message_factory, "GetMessageClass"):  # protobuf 4.22 and later
            return message_factory.GetMessageClass(descriptor)
        return factory.GetPrototype(descriptor)

    return cls
