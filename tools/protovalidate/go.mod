// Pins protovalidate, whose validate.proto scripts/vendor-protos.sh copies for buf.
module meshkit.local/tools/protovalidate

go 1.26
